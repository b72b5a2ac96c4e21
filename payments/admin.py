"""Payments in admin: read-only, with the per-payment timeline (served by the back office, linked by
URL name so that payments imports nothing from refunds), gateway sync and inbox replay."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from config.admin import ReadOnlyInline
from config.audit import Actor
from config.errors import DomainError
from orders.admin import ViewOnlyAdmin, request_refund_redirect
from payments.models import (
    GatewayNotification,
    Payment,
    PaymentEvent,
    ServiceOrder,
    ServiceOrderEvent,
    WeChatIdentity,
)
from payments.payscore import service_orders_unpaid
from payments.services import payment_sync
from payments.webhooks import notification_replay

REPLAY_PERM = "payments.replay_gatewaynotification"  # created by refunds/migrations/0002_groups.py


class PaymentEventInline(ReadOnlyInline):
    model = PaymentEvent
    fields = ("created_at", "action", "from_status", "to_status", "actor", "reason", "data")
    readonly_fields = fields


class NotificationInline(ReadOnlyInline):
    model = GatewayNotification
    fields = ("received_at", "event_type", "verified", "duplicate", "processed_at", "error")
    readonly_fields = fields
    show_change_link = True


@admin.register(Payment)
class PaymentAdmin(ViewOnlyAdmin):
    list_display = (
        "payment_no",
        "order",
        "channel",
        "status",
        "amount_fen",
        "refunded_fen",
        "flag",
        "created_at",
        "timeline",
    )
    list_filter = ("status", "channel", "flag", "created_at")
    search_fields = ("payment_no", "order__order_no", "gateway_trade_no")
    date_hierarchy = "created_at"
    list_select_related = ("order",)
    exclude = ("prepay",)  # what the payer's client needs; no use to staff
    readonly_fields = ("timeline",)
    inlines = [PaymentEventInline, NotificationInline]
    actions = ("sync_with_gateway", "request_refund")

    def has_request_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("refunds.request_refund")

    @admin.display(description="timeline")
    def timeline(self, obj: Payment) -> str:
        return format_html('<a href="{}">timeline</a>', reverse("admin:backoffice_payment_timeline", args=[obj.pk]))

    @admin.action(description="Ask the gateway now and apply its answer", permissions=["view"])
    def sync_with_gateway(self, request: HttpRequest, queryset: QuerySet) -> None:
        for payment in queryset[:50]:
            try:
                payment_sync(payment_no=payment.payment_no, actor=Actor.user(request.user))
            except DomainError as exc:
                self.message_user(request, f"{payment}: {exc.message}", messages.ERROR)

    @admin.action(description="Request a refund of this payment's order", permissions=["request_refund"])
    def request_refund(self, request: HttpRequest, queryset: QuerySet):
        return request_refund_redirect(self, request, list(queryset.values_list("order__order_no", flat=True)[:2]))


@admin.register(GatewayNotification)
class GatewayNotificationAdmin(ViewOnlyAdmin):
    """The inbox. The body is the gateway's (no secret of ours); headers hold its signature, not keys."""

    list_display = (
        "received_at",
        "gateway",
        "event_type",
        "reference",
        "verified",
        "duplicate",
        "processed_at",
        "error",
    )
    list_filter = ("gateway", "verified", "duplicate", "event_type", ("processed_at", admin.EmptyFieldListFilter))
    search_fields = ("reference", "event_id")
    readonly_fields = ("body_text",)
    actions = ("replay",)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REPLAY_PERM)

    @admin.display(description="body")
    def body_text(self, obj: GatewayNotification) -> str:
        return bytes(obj.body).decode("utf-8", errors="replace")

    def _replay_one(self, request: HttpRequest, row: GatewayNotification) -> None:
        """Replay through the webhook service; Django's admin log records who replayed it (the
        service takes no actor: the events it writes name the gateway)."""
        try:
            ok, message = notification_replay(row_id=row.pk)
        except DomainError as exc:
            self.message_user(request, f"#{row.pk}: {exc.message}", messages.ERROR)
            return
        finally:
            self.log_change(request, row, "replayed")
        if ok:
            self.message_user(request, f"#{row.pk} ({row.reference}): processed again.", messages.SUCCESS)
        else:
            self.message_user(request, f"#{row.pk} ({row.reference}): {message}", messages.ERROR)

    @admin.action(description="Replay: process the stored verified notification again", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet) -> None:
        for row in queryset.order_by("id")[:50]:
            self._replay_one(request, row)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(require_POST(self.replay_view))
        return [path("<int:row_id>/replay/", view, name="payments_gatewaynotification_replay"), *super().get_urls()]

    def replay_view(self, request: HttpRequest, row_id: int) -> HttpResponse:
        if not self.has_replay_permission(request):
            raise PermissionDenied
        self._replay_one(request, get_object_or_404(GatewayNotification, pk=row_id))
        target = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
            target = reverse("admin:payments_gatewaynotification_change", args=[row_id])
        return HttpResponseRedirect(target)


@admin.register(WeChatIdentity)
class WeChatIdentityAdmin(ViewOnlyAdmin):
    list_display = ("user", "openid", "created_at")
    search_fields = ("openid", "user__username")


class ServiceOrderEventInline(ReadOnlyInline):
    model = ServiceOrderEvent
    fields = ("created_at", "action", "from_status", "to_status", "actor", "reason", "data")
    readonly_fields = fields


class UnpaidFilter(admin.SimpleListFilter):
    """Finance: completed Pay Score orders WeChat has not collected after ``PAYSCORE_UNPAID_AFTER_SECONDS``."""

    title = "collection"
    parameter_name = "collection"

    def lookups(self, request, model_admin):
        return (("unpaid", "Not collected (overdue)"),)

    def queryset(self, request, queryset):
        if self.value() == "unpaid":
            return queryset.filter(pk__in=[so.pk for so in service_orders_unpaid(now=timezone.now())])
        return queryset


@admin.register(ServiceOrder)
class ServiceOrderAdmin(ViewOnlyAdmin):
    """WeChat Pay Score service orders (pay after use); read-only, synced by reconciliation."""

    list_display = (
        "out_order_no",
        "order",
        "status",
        "risk_fund_fen",
        "total_fen",
        "paid_fen",
        "gateway_state",
        "completed_at",
        "paid_at",
    )
    list_filter = (UnpaidFilter, "status", "created_at")
    search_fields = ("out_order_no", "order__order_no", "gateway_trade_no")
    list_select_related = ("order",)
    exclude = ("package",)
    inlines = [ServiceOrderEventInline]
