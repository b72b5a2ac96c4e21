"""Orders in admin: read-only; "stuck" filter (pending past expiry); staff request refunds from here."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from core.admin import EventAdmin, EventInline, YuanMixin, ident_html, name_html, when_field
from core.money import format_yuan
from orders.models import AbandonedRental, Order, OrderEvent


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


class OrderEventInline(EventInline):
    model = OrderEvent
    status_labels = dict(Order.Status.choices)


class StuckFilter(admin.SimpleListFilter):
    title = "stuck"
    parameter_name = "stuck"

    def lookups(self, request, model_admin):
        return [("yes", "awaiting payment past expiry")]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(status=Order.Status.PENDING_PAYMENT, expires_at__lt=timezone.now())
        return queryset


def pricing_text(pricing: dict) -> str:
    """The server's quote (``Order.pricing``, fen) for people: "2 h at ¥5.00/h (at least 1 h billed,
    capped at ¥50.00) = ¥10.00"."""
    if not pricing:
        return "-"
    hours, billed = pricing.get("hours"), pricing.get("billed_hours")
    text = f"{hours} h" if hours is not None else ""
    if pricing.get("price_per_hour_fen") is not None:
        text += f" at {format_yuan(pricing['price_per_hour_fen'])}/h"
    notes = []
    if billed is not None and billed != hours:
        notes.append(f"{billed} h billed")
    if pricing.get("cap_fen") is not None:
        notes.append(f"capped at {format_yuan(pricing['cap_fen'])}")
    if notes:
        text += f" ({', '.join(notes)})"
    if pricing.get("amount_fen") is not None:
        text += f" = {format_yuan(pricing['amount_fen'])}"
    return text.strip() or "-"


@admin.register(Order)
class OrderAdmin(ViewOnlyAdmin):
    # fits a list at 1366 px: the number over the kind, the customer, status, amount, created
    list_display = ("order_cell", "customer", "status", "amount_fen", when_field("created_at", "created"))
    list_display_links = None
    list_filter = ("status", "kind", StuckFilter, "created_at")
    search_fields = ("order_no", "user__username")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    inlines = [OrderEventInline]
    actions = ("request_refund",)

    def has_request_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("refunds.request_refund")

    @admin.display(description="order / kind", ordering="order_no")
    def order_cell(self, obj: Order) -> SafeString:
        link = ident_html(obj.order_no, href=reverse("admin:orders_order_change", args=[obj.pk]))
        return format_html('{}<span class="bo-sub bo-quiet">{}</span>', link, obj.get_kind_display())

    @admin.display(description="customer", ordering="user__username")
    def customer(self, obj: Order) -> SafeString:
        name = obj.user.get_username()
        return name_html(name)

    @admin.display(description="pricing")
    def pricing_shown(self, obj: Order) -> str:
        return pricing_text(obj.pricing)

    @admin.action(description="Request a refund of this order", permissions=["request_refund"])
    def request_refund(self, request: HttpRequest, queryset: QuerySet):
        return request_refund_redirect(self, request, list(queryset.values_list("order_no", flat=True)[:2]))


@admin.register(OrderEvent)
class OrderEventAdmin(EventAdmin):
    subject = "order__order_no"
    status_labels = dict(Order.Status.choices)
    list_filter = ("action",)
    list_select_related = ("order",)
    search_fields = ("order__order_no", "actor")


class AbandonedTaskFilter(admin.SimpleListFilter):
    title = "task"
    parameter_name = "task"

    def lookups(self, request, model_admin):
        return [("open", "to clear"), ("cleared", "cleared")]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        from orders.abandoned import abandoned_to_clear

        to_clear = abandoned_to_clear().values("pk")
        if self.value() == "open":
            return queryset.filter(pk__in=to_clear)
        if self.value() == "cleared":
            return queryset.exclude(pk__in=to_clear)
        return queryset


@admin.register(AbandonedRental)
class AbandonedRentalAdmin(ViewOnlyAdmin):
    """Operations' task list: rentals left past ``ABANDONED_AFTER``. "Open and clear" records a staff door-open
    with who and why, frees the compartment; the owed overtime stays for finance (``orders.abandoned``)."""

    list_display = ("order_no", "compartment", "user", "rental_ends_at", "abandoned_at", "owed", "task")
    list_filter = (AbandonedTaskFilter,)
    search_fields = ("order_no", "user__username", "compartment__label", "compartment__cabinet__code")
    list_select_related = ("user", "compartment__cabinet")
    ordering = ("abandoned_at",)
    inlines = [OrderEventInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).filter(abandoned_at__isnull=False)

    @admin.display(description="owed overtime")
    def owed(self, obj: Order) -> str:
        from core.money import format_yuan

        unpaid = [o for o in obj.overtime_orders.all() if o.status == Order.Status.PENDING_PAYMENT]
        return ", ".join(f"{format_yuan(o.amount_fen)} ({o.order_no})" for o in unpaid) or "-"

    @admin.display(description="task")
    def task(self, obj: Order):
        from django.utils.html import format_html

        compartment = obj.compartment
        if compartment.status != "occupied" or compartment.reference != obj.order_no:
            return "cleared"
        url = reverse("admin:orders_abandonedrental_clear", args=[obj.pk])
        return format_html('<a class="button" href="{}">Open and clear</a>', url)

    def get_urls(self):
        from django.urls import path

        view = self.admin_site.admin_view(self.clear_view)
        return [path("<int:pk>/clear/", view, name="orders_abandonedrental_clear"), *super().get_urls()]

    def clear_view(self, request: HttpRequest, pk: int):
        from django import forms
        from django.core.exceptions import PermissionDenied
        from django.shortcuts import get_object_or_404
        from django.template.response import TemplateResponse

        from core.errors import DomainError
        from orders.abandoned import rental_clear_abandoned

        if not request.user.has_perm("orders.clear_abandoned"):
            raise PermissionDenied
        rental = get_object_or_404(self.get_queryset(request).select_related("compartment__cabinet"), pk=pk)

        class ClearForm(forms.Form):
            reason = forms.CharField(max_length=200, help_text="Why the door is opened, what was found, where it is.")

        form = ClearForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                rental_clear_abandoned(order_id=rental.pk, staff=request.user, reason=form.cleaned_data["reason"])
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, f"{rental.compartment} opened and cleared: it is free again.")
                return HttpResponseRedirect(reverse("admin:orders_abandonedrental_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Open and clear {rental.compartment}",
            "rental": rental,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(
            request, "admin/orders/abandoned_clear.html", context, status=400 if form.errors else 200
        )
