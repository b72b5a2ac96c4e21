from django.contrib import admin, messages

from config.admin import ReadOnlyAdmin, ReadOnlyInline
from config.audit import Actor
from config.errors import DomainError
from payments.models import GatewayNotification, Payment, PaymentEvent, WeChatIdentity
from payments.services import payment_sync


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
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ("payment_no", "order", "channel", "status", "amount_fen", "refunded_fen", "flag", "created_at")
    list_filter = ("status", "channel", "flag", "created_at")
    search_fields = ("payment_no", "order__order_no", "gateway_trade_no")
    exclude = ("prepay",)  # what the payer's client needs; no use to staff
    inlines = [PaymentEventInline, NotificationInline]
    actions = ("sync_with_gateway",)

    @admin.action(description="Ask the gateway now and apply its answer", permissions=["view"])
    def sync_with_gateway(self, request, queryset):
        for payment in queryset[:50]:
            try:
                payment_sync(payment_no=payment.payment_no, actor=Actor.user(request.user))
            except DomainError as exc:
                self.message_user(request, f"{payment}: {exc.message}", messages.ERROR)


@admin.register(GatewayNotification)
class GatewayNotificationAdmin(ReadOnlyAdmin):
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
    list_filter = ("gateway", "verified", "duplicate", "event_type")
    search_fields = ("reference", "event_id")
    readonly_fields = ("body_text",)

    @admin.display(description="body")
    def body_text(self, obj) -> str:
        return bytes(obj.body).decode("utf-8", errors="replace")


@admin.register(WeChatIdentity)
class WeChatIdentityAdmin(ReadOnlyAdmin):
    list_display = ("user", "openid", "created_at")
    search_fields = ("openid", "user__username")
