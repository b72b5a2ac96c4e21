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
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from core.admin import EventInline, ReadOnlyInline, ident_html, time_text, when_field, when_html
from core.audit import Actor
from core.errors import DomainError
from core.logging import masked_text
from core.money import format_yuan
from orders.admin import ViewOnlyAdmin, request_refund_redirect
from payments.inbox import notification_replay
from payments.models import (
    GATEWAY_LABELS,
    GatewayNotification,
    Payment,
    PaymentEvent,
    ServiceOrder,
    ServiceOrderEvent,
    WeChatIdentity,
)
from payments.payscore import service_orders_unpaid
from payments.services import payment_sync

REPLAY_PERM = "payments.replay_gatewaynotification"  # created by refunds/migrations/0002_groups.py


class PaymentEventInline(EventInline):
    model = PaymentEvent
    status_labels = dict(Payment.Status.choices)


class NotificationInline(ReadOnlyInline):
    model = GatewayNotification
    fields = ("received_at", "event_type", "verified", "duplicate", "processed_at", "error")
    readonly_fields = fields
    show_change_link = True


@admin.register(Payment)
class PaymentAdmin(ViewOnlyAdmin):
    # fits a list at 1366 px: the number over its order and timeline, channel, status (and flag),
    # amount (and refunded), created
    list_display = ("payment_cell", "channel", "status_cell", "amount_cell", when_field("created_at", "created"))
    list_display_links = None
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

    @admin.display(description="payment / order", ordering="payment_no")
    def payment_cell(self, obj: Payment) -> SafeString:
        return format_html(
            '{}<span class="bo-sub">{}</span><span class="bo-sub">{}</span>',
            ident_html(obj.payment_no, href=reverse("admin:payments_payment_change", args=[obj.pk])),
            ident_html(obj.order.order_no, href=reverse("admin:orders_order_change", args=[obj.order_id])),
            self.timeline(obj),
        )

    @admin.display(description="status", ordering="status")
    def status_cell(self, obj: Payment) -> SafeString:
        if not obj.flag:
            return format_html("{}", obj.get_status_display())
        return format_html(
            '{}<span class="bo-sub bo-warn">{}</span>', obj.get_status_display(), obj.flag.replace("_", " ")
        )

    @admin.display(description="amount", ordering="amount_fen")
    def amount_cell(self, obj: Payment) -> SafeString:
        amount = format_html('<span class="bo-money">{}</span>', format_yuan(obj.amount_fen))
        if not obj.refunded_fen:
            return amount
        return format_html(
            '{}<span class="bo-sub bo-quiet bo-money">refunded {}</span>', amount, format_yuan(obj.refunded_fen)
        )

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


class GatewayFilter(admin.SimpleListFilter):
    """A gateway by its name ("WeChat Pay"), not its code; the parameter stays ``gateway``."""

    title = "gateway"
    parameter_name = "gateway"

    def lookups(self, request, model_admin):
        return [(code, label) for code, label in GATEWAY_LABELS.items() if code != "wallet"]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        return queryset.filter(gateway=self.value()) if self.value() else queryset


@admin.register(GatewayNotification)
class GatewayNotificationAdmin(ViewOnlyAdmin):
    """The inbox. The body is the gateway's (no secret of ours); headers hold its signature, not keys."""

    # fits a list at 1366 px: when, from which gateway, what about (event over reference), its state
    list_display = ("received", "gateway_shown", "about", "state", "error_shown")
    list_display_links = ("received",)
    list_filter = (GatewayFilter, "verified", "duplicate", "event_type", ("processed_at", admin.EmptyFieldListFilter))
    search_fields = ("reference", "event_id")
    readonly_fields = ("body_text",)
    actions = ("replay",)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REPLAY_PERM)

    @admin.display(description="received", ordering="received_at")
    def received(self, obj: GatewayNotification) -> SafeString:
        return when_html(obj.received_at)

    @admin.display(description="gateway", ordering="gateway")
    def gateway_shown(self, obj: GatewayNotification) -> str:
        return GATEWAY_LABELS.get(obj.gateway, obj.gateway)

    @admin.display(description="event / reference", ordering="reference")
    def about(self, obj: GatewayNotification) -> SafeString:
        return format_html(
            '<span class="bo-action">{}</span><span class="bo-sub">{}</span>',
            obj.event_type or "(unparsed)",
            ident_html(obj.reference),
        )

    @admin.display(description="state")
    def state(self, obj: GatewayNotification) -> str:
        if not obj.verified:
            return "not verified"
        if obj.duplicate:
            return "duplicate"
        return f"processed {time_text(obj.processed_at)}" if obj.processed_at else "not processed"

    @admin.display(description="error", ordering="error")
    def error_shown(self, obj: GatewayNotification) -> SafeString:
        if not obj.error:
            return "-"
        return format_html('<span class="bo-warn bo-clip" title="{}">{}</span>', obj.error, obj.error)

    @admin.display(description="body (signature masked)")
    def body_text(self, obj: GatewayNotification) -> SafeString:
        body = masked_text(bytes(obj.body).decode("utf-8", errors="replace"))
        return format_html('<pre class="bo-json">{}</pre>', body)

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


class ServiceOrderEventInline(EventInline):
    model = ServiceOrderEvent
    status_labels = dict(ServiceOrder.Status.choices)


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

    # fits 1366 px (the gateway's state and the times are on the detail page)
    list_display = (
        "out_order_no",
        "order",
        "status",
        "total_cell",
        "collected_cell",
        when_field("paid_at", "collected at"),
    )
    list_filter = (UnpaidFilter, "status", "created_at")
    search_fields = ("out_order_no", "order__order_no", "gateway_trade_no")
    list_select_related = ("order",)
    exclude = ("package",)
    inlines = [ServiceOrderEventInline]

    @admin.display(description="total", ordering="total_fen")
    def total_cell(self, obj: ServiceOrder) -> SafeString:
        return (
            format_html('<span class="bo-money">{}</span>', format_yuan(obj.total_fen))
            if obj.total_fen is not None
            else "-"
        )

    @admin.display(description="collected", ordering="paid_fen")
    def collected_cell(self, obj: ServiceOrder) -> SafeString:
        return format_html('<span class="bo-money">{}</span>', format_yuan(obj.paid_fen))
