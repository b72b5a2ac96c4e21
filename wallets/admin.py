"""Wallets and the append-only ledger in admin: read-only (balances change only through services)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from core.admin import ReadOnlyInline, YuanMixin, ident_html, name_html, when_field
from core.money import format_yuan
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
    list_display = ("user", "balance_fen", "updated_at")
    exclude = ("version",)  # the optimistic-lock counter: no one's business but the code's
    search_fields = ("user__username",)
    inlines = [LedgerInline]


@admin.register(WalletTransaction)
class WalletTransactionAdmin(_ViewOnly):
    # fits a list at 1366 px: time, whose wallet, what (over its reference), amount, balance after
    list_display = (when_field("created_at", "time"), "customer", "entry", "amount", "balance_after_fen")
    list_display_links = None
    list_select_related = ("wallet__user",)
    list_filter = ("type", "created_at")
    search_fields = ("reference", "wallet__user__username", "actor")
    date_hierarchy = "created_at"

    @admin.display(description="wallet of", ordering="wallet__user__username")
    def customer(self, obj: WalletTransaction) -> SafeString:
        name = obj.wallet.user.get_username()
        return name_html(name)

    @admin.display(description="entry / reference", ordering="type")
    def entry(self, obj: WalletTransaction) -> SafeString:
        link = reverse("admin:wallets_wallettransaction_change", args=[obj.pk])
        return format_html(
            '<a href="{}">{}</a><span class="bo-sub">{}</span>', link, obj.get_type_display(), ident_html(obj.reference)
        )

    @admin.display(description="amount", ordering="amount_fen")
    def amount(self, obj: WalletTransaction) -> SafeString:
        return format_html('<span class="bo-money">{}</span>', format_yuan(obj.amount_fen, signed=True))
