from django.contrib import admin, messages

from config.admin import ReadOnlyAdmin, ReadOnlyInline, YuanMixin
from config.audit import Actor
from config.errors import DomainError
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


class LockerEventInline(ReadOnlyInline):
    model = LockerEvent
    fields = ("created_at", "action", "from_status", "to_status", "actor", "reference", "reason", "data")
    readonly_fields = fields
    ordering = ("-id",)


@admin.register(Compartment)
class CompartmentAdmin(admin.ModelAdmin):
    list_display = ("__str__", "cabinet", "label", "size", "status", "reference")
    list_filter = ("status", "size", "cabinet")
    search_fields = ("label", "cabinet__code", "reference")
    readonly_fields = ("status", "reference", "updated_at")
    inlines = [LockerEventInline]
    actions = ("set_out_of_service", "return_to_service")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

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
    list_display = ("reference", "compartment", "status", "valid_until", "created_at")
    list_filter = ("status",)
    search_fields = ("reference",)
    exclude = ("code",)  # the code opens a door: staff see the order, not the secret


@admin.register(LockerEvent)
class LockerEventAdmin(ViewOnlyAdmin):
    list_display = ("created_at", "compartment", "action", "from_status", "to_status", "actor", "reference")
    list_filter = ("action",)
    search_fields = ("reference", "actor")
