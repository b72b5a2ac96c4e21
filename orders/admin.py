from django.contrib import admin

from config.admin import ReadOnlyAdmin, ReadOnlyInline
from orders.models import Order, OrderEvent


class OrderEventInline(ReadOnlyInline):
    model = OrderEvent
    fields = ("created_at", "action", "from_status", "to_status", "actor", "reason", "data")
    readonly_fields = fields


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ("order_no", "user", "kind", "status", "amount_fen", "created_at", "paid_at")
    list_filter = ("status", "kind", "created_at")
    search_fields = ("order_no", "user__username")
    inlines = [OrderEventInline]


@admin.register(OrderEvent)
class OrderEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "order", "action", "from_status", "to_status", "actor")
    list_filter = ("action",)
    search_fields = ("order__order_no", "actor")
