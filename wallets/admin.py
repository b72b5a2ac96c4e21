from django.contrib import admin

from config.admin import ReadOnlyAdmin, ReadOnlyInline
from wallets.models import Wallet, WalletTransaction


class LedgerInline(ReadOnlyInline):
    model = WalletTransaction
    fields = ("created_at", "type", "amount_fen", "balance_before_fen", "balance_after_fen", "reference", "actor")
    readonly_fields = fields
    ordering = ("-id",)


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdmin):
    list_display = ("user", "balance_fen", "version", "updated_at")
    search_fields = ("user__username",)
    inlines = [LedgerInline]


@admin.register(WalletTransaction)
class WalletTransactionAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "wallet", "type", "amount_fen", "balance_after_fen", "reference")
    list_filter = ("type",)
    search_fields = ("reference", "wallet__user__username")
