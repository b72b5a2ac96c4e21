"""Admin building blocks: read-mostly model admins (money and status never editable)."""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Everything visible, nothing editable: state changes go through services (admin actions)."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the view permission shows the detail page, without a form or a Save button

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
