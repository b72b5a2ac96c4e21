"""Admin building blocks: read-mostly model admins (money and status never editable), money in yuan."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.contrib import admin

from config.money import format_yuan

SITE_HEADER = "Locker payments back office"
SITE_TITLE = "Locker payments"
INDEX_TITLE = "Orders, payments, refunds and settlement"


def yuan_field(field: str, label: str | None = None) -> Callable[[Any], str]:
    """An admin column or read-only field showing the integer-fen model field ``field`` as
    ``¥3,322.71``; the column sorts by ``field``. The label is the field's name without ``_fen``."""

    def show(obj: Any) -> str:
        return format_yuan(getattr(obj, field))

    name = field.removesuffix("_fen")
    show.__name__ = name  # the column's CSS class
    show.short_description = label or name.replace("_", " ")  # type: ignore[attr-defined]
    show.admin_order_field = field  # type: ignore[attr-defined]
    return show


class YuanMixin:
    """Every ``*_fen`` model field is shown in yuan (``¥3,322.71``) wherever a person reads it:
    list columns, and detail pages that cannot be edited (the field is replaced in place by its yuan
    twin). A form that edits an amount (a price plan) keeps its fen field."""

    model: Any

    def _twin(self, name: Any) -> Any:
        if not isinstance(name, str) or not name.endswith("_fen"):
            return name
        twins = self.__dict__.setdefault("_yuan_twins", {})
        if name not in twins:
            field = self.model._meta.get_field(name) if hasattr(self.model, "_meta") else None
            label = str(field.verbose_name).removesuffix(" fen") if field is not None else None
            twins[name] = yuan_field(name, label)
        return twins[name]

    def _money_fields(self) -> list[str]:
        return [f.name for f in self.model._meta.concrete_fields if f.name.endswith("_fen")]

    def get_list_display(self, request) -> Sequence[Any]:
        return [self._twin(f) for f in super().get_list_display(request)]  # type: ignore[misc]

    def get_readonly_fields(self, request, obj=None) -> Sequence[Any]:
        fields = list(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        if self.has_change_permission(request, obj):  # type: ignore[attr-defined]
            return fields
        return [self._twin(f) for f in fields] + [self._twin(f) for f in self._money_fields() if f not in fields]

    def get_fields(self, request, obj=None) -> Sequence[Any]:
        fields = super().get_fields(request, obj)  # type: ignore[misc]
        if self.has_change_permission(request, obj):  # type: ignore[attr-defined]
            return fields
        out: list[Any] = []
        for f in fields:
            twin = self._twin(f)
            if twin not in out:
                out.append(twin)
        return out


class ReadOnlyAdmin(YuanMixin, admin.ModelAdmin):
    """Everything visible, nothing editable: state changes go through services (admin actions)."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the view permission shows the detail page, without a form or a Save button

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(YuanMixin, admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
