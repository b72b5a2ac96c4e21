"""The wallets app: balances and an append-only ledger (floor 1; imports no other app)."""

from django.apps import AppConfig


class WalletsConfig(AppConfig):
    name = "wallets"
    default_auto_field = "django.db.models.BigAutoField"
