"""Admin of cabinets, compartments, price plans and pickup codes: read-mostly, every state change through
``lockers.services`` (audited)."""

from django.contrib import admin, messages
from django.utils.safestring import SafeString

from core.admin import EventAdmin, EventInline, ReadOnlyAdmin, YuanMixin, ident_html, when_field
from core.audit import Actor
from core.errors import DomainError
from lockers import services
from lockers.models import Cabinet, Compartment, LockerEvent, PickupCode, PricePlan


class CompartmentInline(admin.TabularInline):
    model = Compartment
    extra = 0
    fields = ("label", "size", "status")
    readonly_fields = ("status",)
    can_delete = False


@admin.register(Cabinet)
class CabinetAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "location", "is_online")
    list_filter = ("is_online",)
    search_fields = ("code", "name", "location")
    inlines = [CompartmentInline]


class LockerEventInline(EventInline):
    model = LockerEvent
    ordering = ("-id",)
    status_labels = dict(Compartment.Status.choices)
    fields = ("event_time", "order", *EventInline.fields[1:])
    readonly_fields = fields

    @admin.display(description="order")
    def order(self, obj: LockerEvent) -> str:
        return ident_html(obj.reference)


@admin.register(Compartment)
class CompartmentAdmin(admin.ModelAdmin):
    list_display = ("__str__", "cabinet", "status", "order")
    list_select_related = ("cabinet",)
    list_filter = ("status", "size", "cabinet")
    search_fields = ("label", "cabinet__code", "reference")
    readonly_fields = ("status", "reference", "updated_at")
    inlines = [LockerEventInline]
    actions = ("set_out_of_service", "return_to_service")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="order", ordering="reference")
    def order(self, obj: Compartment) -> SafeString:
        return ident_html(obj.reference) if obj.reference else "-"

    def _run(self, request, queryset, fn, **kwargs):
        for compartment in queryset:
            try:
                fn(compartment_id=compartment.pk, actor=Actor.user(request.user), **kwargs)
            except DomainError as exc:
                self.message_user(request, f"{compartment}: {exc.message}", messages.ERROR)

    @admin.action(description="Take out of service", permissions=["change"])
    def set_out_of_service(self, request, queryset):
        self._run(request, queryset, services.compartment_set_out_of_service, reason="admin")

    @admin.action(description="Return to service", permissions=["change"])
    def return_to_service(self, request, queryset):
        self._run(request, queryset, services.compartment_return_to_service, reason="admin")


@admin.register(PricePlan)
class PricePlanAdmin(YuanMixin, admin.ModelAdmin):
    """Tariffs are configuration: operations set them; changes land in Django's admin log."""

    list_display = (
        "size",
        "price_per_hour_fen",
        "min_hours",
        "cap_fen",
        "overtime_per_hour_fen",
        "overtime_daily_cap_fen",
        "is_active",
    )


class ViewOnlyAdmin(ReadOnlyAdmin):
    """Audit rows and codes: shown, never a change form (not even one that refuses to save)."""

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PickupCode)
class PickupCodeAdmin(ViewOnlyAdmin):
    list_display = ("order", "compartment", "status", when_field("valid_until", "valid until"))
    list_display_links = ("order",)
    list_select_related = ("compartment__cabinet",)
    list_filter = ("status",)
    search_fields = ("reference",)
    exclude = ("code",)  # the code opens a door: staff see the order, not the secret

    @admin.display(description="order", ordering="reference")
    def order(self, obj: PickupCode) -> SafeString:
        return ident_html(obj.reference)


@admin.register(LockerEvent)
class LockerEventAdmin(EventAdmin):
    subject = "reference"
    status_labels = dict(Compartment.Status.choices)
    list_display = ("event_time", "compartment", "event_subject", "event_change", "event_actor")
    list_filter = ("action",)
    list_select_related = ("compartment__cabinet",)
    search_fields = ("reference", "actor")
