"""Wallets and the append-only ledger in admin: read-only (balances change only through services)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from config.admin import ReadOnlyInline, YuanMixin
from wallets.models import Wallet, WalletTransaction


class _ViewOnly(YuanMixin, admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class LedgerInline(ReadOnlyInline):
    model = WalletTransaction
    fields = ("created_at", "type", "amount_fen", "balance_before_fen", "balance_after_fen", "reference", "actor")
    readonly_fields = fields
    ordering = ("-id",)


@admin.register(Wallet)
class WalletAdmin(_ViewOnly):
    list_display = ("user", "balance_fen", "version", "updated_at")
    search_fields = ("user__username",)
    inlines = [LedgerInline]


@admin.register(WalletTransaction)
class WalletTransactionAdmin(_ViewOnly):
    list_display = ("created_at", "wallet", "type", "amount_fen", "balance_after_fen", "reference", "actor")
    list_filter = ("type", "created_at")
    search_fields = ("reference", "wallet__user__username", "actor")
    date_hierarchy = "created_at"
