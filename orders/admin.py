"""Orders in admin: read-only; "stuck" filter (pending past expiry); staff request refunds from here."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from config.admin import ReadOnlyInline, YuanMixin
from orders.models import Order, OrderEvent


class ViewOnlyAdmin(YuanMixin, admin.ModelAdmin):
    """Shown, never edited: no add, change or delete, whatever the user's model permissions; money in yuan."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def request_refund_redirect(model_admin: admin.ModelAdmin, request: HttpRequest, order_nos: list[str]):
    """The admin action "Request refund" (orders, payments): one order at a time, to the request
    page of the back office (linked by URL name: orders imports nothing from refunds)."""
    if len(order_nos) != 1:
        model_admin.message_user(request, "Select exactly one to request a refund.", messages.WARNING)
        return None
    query = urlencode({"order_no": order_nos[0]})
    return HttpResponseRedirect(f"{reverse('admin:refunds_refund_request')}?{query}")


class OrderEventInline(ReadOnlyInline):
    model = OrderEvent
    fields = ("created_at", "action", "from_status", "to_status", "actor", "reason", "data")
    readonly_fields = fields


class StuckFilter(admin.SimpleListFilter):
    title = "stuck"
    parameter_name = "stuck"

    def lookups(self, request, model_admin):
        return [("yes", "pending_payment past expiry")]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(status=Order.Status.PENDING_PAYMENT, expires_at__lt=timezone.now())
        return queryset


@admin.register(Order)
class OrderAdmin(ViewOnlyAdmin):
    list_display = ("order_no", "user", "kind", "status", "amount_fen", "created_at", "paid_at", "expires_at")
    list_filter = ("status", "kind", StuckFilter, "created_at")
    search_fields = ("order_no", "user__username")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    inlines = [OrderEventInline]
    actions = ("request_refund",)

    def has_request_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("refunds.request_refund")

    @admin.action(description="Request a refund of this order", permissions=["request_refund"])
    def request_refund(self, request: HttpRequest, queryset: QuerySet):
        return request_refund_redirect(self, request, list(queryset.values_list("order_no", flat=True)[:2]))


@admin.register(OrderEvent)
class OrderEventAdmin(ViewOnlyAdmin):
    list_display = ("created_at", "order", "action", "from_status", "to_status", "actor")
    list_filter = ("action",)
    search_fields = ("order__order_no", "actor")
