"""Admin building blocks: read-mostly model admins (money and status never editable), shown for people:
money in yuan (shown and typed), times in ``TIME_ZONE`` with its name, identifiers whole, a user's
page linked only for who may open it, the data of an event as words and yuan instead of raw JSON."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin
from django.db import models
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from core.logging import masked
from core.money import format_yuan, parse_yuan

SITE_HEADER = "Locker payments back office"
SITE_TITLE = "Locker payments"
INDEX_TITLE = "Orders, payments, refunds and settlement"
TIME_FORMAT = "Y-m-d H:i:s T"  # core/formats: 2026-05-02 07:30:05 CST


# --- small pieces of HTML every back-office page uses ---------------------------------------------


def ident_html(value: Any, *, href: str = "") -> SafeString:
    """An identifier (order, payment, refund number, a gateway's trade number) kept on one line in
    a fixed-width font, never broken in the middle; a table gives it the room (``.bo-id``)."""
    if value in (None, ""):
        return mark_safe("-")
    if href:
        return format_html('<a href="{}" class="bo-id" title="{}">{}</a>', href, value, value)
    return format_html('<code class="bo-id" title="{}">{}</code>', value, value)


def when_html(at: datetime | None, *, seconds: bool = True) -> SafeString:
    """A time in ``TIME_ZONE`` with the zone's name (``2026-11-30 10:14:40 CST``); it may wrap only
    between the day and the time of day (each kept whole)."""
    if at is None:
        return mark_safe("-")
    local = timezone.localtime(at)
    full = date_format(local, TIME_FORMAT)
    clock = date_format(local, "H:i:s T" if seconds else "H:i T")
    return format_html(
        '<time class="bo-when" datetime="{}" title="{}"><span>{}</span> <span>{}</span></time>',
        local.isoformat(),
        full,
        date_format(local, "Y-m-d"),
        clock,
    )


def time_text(at: datetime | None) -> str:
    """``2026-11-30 10:14:40 CST`` (``TIME_ZONE``), ``""`` for no time."""
    return date_format(timezone.localtime(at), TIME_FORMAT) if at is not None else ""


def _label(key: str) -> str:
    return key.removesuffix("_fen").replace("_", " ")


def _value_text(key: str, value: Any) -> str:
    if key.endswith("_fen") and isinstance(value, int) and not isinstance(value, bool):
        return format_yuan(value)
    if isinstance(value, dict):
        return "(" + ", ".join(f"{_label(k)} {_value_text(k, v)}" for k, v in value.items()) + ")"
    if isinstance(value, list):
        return ", ".join(_value_text(key, v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def data_pairs(data: Any) -> list[tuple[str, str]]:
    """An event's data (or any JSON object) as (label, value) pairs people read: a ``*_fen`` key
    is shown in yuan under its name without ``_fen`` (``amount_fen: 500`` -> ``amount ¥5.00``),
    nested objects and lists in words; empty values are left out."""
    if not isinstance(data, dict):
        return [("", _value_text("", data))] if data not in (None, "", [], {}) else []
    return [(_label(k), _value_text(k, v)) for k, v in data.items() if v not in (None, "", [], {})]


def data_text(data: Any) -> str:
    """``data_pairs`` on one line: ``amount ¥5.00, refund no RF2026...``."""
    return ", ".join(f"{label} {value}".strip() for label, value in data_pairs(data))


def data_html(data: Any) -> SafeString:
    """``data_pairs`` as HTML: each pair kept together (an identifier never broken), wrapping
    between pairs; ``-`` for nothing."""
    pairs = data_pairs(masked(data))
    if not pairs:
        return mark_safe("-")
    return format_html(
        '<span class="bo-data">{}</span>',
        format_html_join(" ", '<span class="bo-pair"><span class="bo-key">{}</span> <code>{}</code></span>', pairs),
    )


def name_html(name: str, *, title: str = "") -> SafeString:
    """A person's name on one line, shortened visibly in a list (``.bo-name``), whole in its title."""
    return format_html('<span class="bo-name" title="{}">{}</span>', title or name, name)


def user_html(user: Any, request: Any) -> SafeString:
    """A staff member or customer by name; a link to their admin page only when the viewer may open it
    (otherwise the link would lead to a bare 403)."""
    if user is None:
        return mark_safe("-")
    name = user.get_username() if hasattr(user, "get_username") else str(user)
    model_admin = admin.site._registry.get(type(user))
    if request is not None and model_admin is not None and model_admin.has_view_or_change_permission(request, user):
        try:
            url = reverse(f"admin:{user._meta.app_label}_{user._meta.model_name}_change", args=[user.pk])
        except NoReverseMatch:
            url = ""
        if url:
            return format_html('<a href="{}" class="bo-name" title="{}">{}</a>', url, name, name)
    return name_html(name)


def actor_names(actors: Any) -> dict[str, str]:
    """Audit actors that are people (``staff:2``, ``user:6``) -> their user names, in one query."""
    from django.contrib.auth import get_user_model

    ids: dict[str, int] = {}
    for actor in actors:
        kind, _, ident = actor.partition(":")
        if kind in ("staff", "user") and ident.isdigit():
            ids[actor] = int(ident)
    if not ids:
        return {}
    users = dict(get_user_model().objects.filter(pk__in=set(ids.values())).values_list("pk", "username"))
    return {actor: users[pk] for actor, pk in ids.items() if pk in users}


def actor_html(actor: str, names: dict[str, str] | None = None) -> SafeString:
    """Who acted: a person by name (their ``staff:2`` in the title), anything else (``gateway:wechat``,
    ``system:expiry``) as the audit code, kept whole."""
    names = actor_names([actor]) if names is None else names
    if actor in names:
        return name_html(names[actor], title=actor)
    return ident_html(actor or "-")


def change_html(action: str, from_label: str, to_label: str) -> SafeString:
    """An audit row's action over its status change (``paid`` / ``Awaiting payment → Paid``)."""
    if not to_label:
        return format_html('<span class="bo-action">{}</span>', action)
    change = format_html("{} &rarr; {}", from_label, to_label) if from_label else to_label
    return format_html('<span class="bo-action">{}</span><br><span class="bo-status">{}</span>', action, change)


# --- money: shown in yuan, typed in yuan ------------------------------------------------------------


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


def data_field(field: str, label: str) -> Callable[[Any], SafeString]:
    """A read-only JSON field (an event's ``data``, a run's ``counts``) shown by ``data_html``."""

    def show(obj: Any) -> SafeString:
        return data_html(getattr(obj, field))

    show.__name__ = f"{field}_shown"
    show.short_description = label  # type: ignore[attr-defined]
    return show


def plain_field(field: str, label: str) -> Callable[[Any], SafeString]:
    """A foreign key shown by name without a link (for a viewer who may not open its page)."""

    def show(obj: Any) -> SafeString:
        related = getattr(obj, field)
        if related is None:
            return mark_safe("-")
        name = related.get_username() if hasattr(related, "get_username") else str(related)
        return name_html(name)

    show.__name__ = f"{field}_name"
    show.short_description = label  # type: ignore[attr-defined]
    return show


def when_field(field: str, label: str) -> Callable[[Any], SafeString]:
    """A list column of a time: ``2026-11-30`` above ``10:14:40 CST`` when the column is narrow."""

    def show(obj: Any) -> SafeString:
        return when_html(getattr(obj, field))

    show.__name__ = field
    show.short_description = label  # type: ignore[attr-defined]
    show.admin_order_field = field  # type: ignore[attr-defined]
    return show


class YuanFormField(forms.CharField):
    """An amount typed in yuan (``8``, ``8.50``, ``¥1,200.00``), cleaned to integer fen by
    ``core.money.parse_yuan``; the database keeps fen. More than two decimals or a negative
    amount is a form error, never rounded."""

    widget = forms.TextInput(attrs={"inputmode": "decimal", "size": 12, "placeholder": "0.00"})

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return format_yuan(value, symbol=False).replace(",", "")
        return value

    def to_python(self, value: Any) -> int | None:
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        try:
            fen = parse_yuan(text)
        except ValueError as exc:
            raise forms.ValidationError(
                "Enter an amount in yuan, such as 12.50 (at most two decimals).", code="invalid"
            ) from exc
        if fen < 0:
            raise forms.ValidationError("The amount cannot be negative.", code="negative")
        return fen


class YuanMixin:
    """Model admins shown for people (the name stays for the money it began with):

    - every ``*_fen`` model field in yuan (``¥3,322.71``) wherever a person reads it: list columns,
      and detail pages that cannot be edited (the field is replaced in place by its yuan twin);
      a form that edits an amount (a price plan) takes it in yuan (``YuanFormField``);
    - a JSON field on a detail page as words and yuan (``data_html``), or by the admin's own
      ``<field>_shown`` method when it has one;
    - a foreign key to a user as the user's name, linked only when the viewer may open that page.
    """

    model: Any

    def _twin(self, name: Any, request: Any = None) -> Any:
        if not isinstance(name, str) or not hasattr(self.model, "_meta"):
            return name
        try:
            field = self.model._meta.get_field(name)
        except Exception:  # noqa: BLE001 - a method or an attribute, not a model field
            return name
        own = f"{name}_shown"
        if hasattr(self, own):
            return own
        twins = self.__dict__.setdefault("_people_twins", {})
        if name.endswith("_fen"):
            if name not in twins:
                twins[name] = yuan_field(name, str(field.verbose_name).removesuffix(" fen"))
            return twins[name]
        if isinstance(field, models.JSONField):
            if name not in twins:
                twins[name] = data_field(name, str(field.verbose_name))
            return twins[name]
        if isinstance(field, models.ForeignKey) and not self._may_open(request, field.related_model):
            if name not in twins:
                twins[name] = plain_field(name, str(field.verbose_name))
            return twins[name]
        return name

    def _may_open(self, request: Any, model: Any) -> bool:
        """Whether the viewer may open the admin page a foreign key would link to (Django links it
        whatever the viewer's permissions; the page itself then answers 403)."""
        related = self.admin_site._registry.get(model) if hasattr(self, "admin_site") else None  # type: ignore[attr-defined]
        return bool(request is not None and related is not None and related.has_view_or_change_permission(request))

    def _money_fields(self) -> list[str]:
        return [f.name for f in self.model._meta.concrete_fields if f.name.endswith("_fen")]

    def _editable(self, request, obj=None) -> bool:
        return bool(self.has_change_permission(request, obj))  # type: ignore[attr-defined]

    def get_list_display(self, request) -> Sequence[Any]:
        shown = []
        for f in super().get_list_display(request):  # type: ignore[misc]
            shown.append(self._twin(f) if isinstance(f, str) and f.endswith("_fen") else f)
        return shown

    def get_readonly_fields(self, request, obj=None) -> Sequence[Any]:
        fields = list(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        if self._editable(request, obj):
            return fields
        return [self._twin(f, request) for f in fields] + [
            self._twin(f, request) for f in self._money_fields() if f not in fields
        ]

    def get_fields(self, request, obj=None) -> Sequence[Any]:
        fields = super().get_fields(request, obj)  # type: ignore[misc]
        if self._editable(request, obj):
            return fields
        out: list[Any] = []
        for f in fields:
            twin = self._twin(f, request)
            if twin not in out:
                out.append(twin)
        return out

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)  # type: ignore[misc]
        if self._editable(request, obj) or not getattr(self, "fieldsets", None):
            return fieldsets  # without declared fieldsets, get_fields has already shown them for people
        return [
            (title, {**options, "fields": [self._twin(f, request) for f in options["fields"]]})
            for title, options in fieldsets
        ]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name.endswith("_fen") and isinstance(db_field, models.IntegerField):
            label = str(db_field.verbose_name).removesuffix(" fen")
            return YuanFormField(
                label=f"{label[:1].upper()}{label[1:]} (¥)",
                required=not db_field.blank,
                help_text="In yuan, such as 8.00.",
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)  # type: ignore[misc]


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


class EventColumns:
    """The columns of an audit trail (``core.audit.AuditEvent`` rows) for people: the time, the action
    over its status change (by label, ``status_labels``: the parent's status choices), who acted,
    and the reason with the event's data in words and yuan."""

    status_labels: dict[str, str] = {}

    @admin.display(description="time", ordering="created_at")
    def event_time(self, obj: Any) -> SafeString:
        return when_html(obj.created_at)

    @admin.display(description="action and status", ordering="action")
    def event_change(self, obj: Any) -> SafeString:
        labels = self.status_labels
        return change_html(
            obj.action, labels.get(obj.from_status, obj.from_status), labels.get(obj.to_status, obj.to_status)
        )

    @admin.display(description="by", ordering="actor")
    def event_actor(self, obj: Any) -> SafeString:
        return actor_html(obj.actor)

    @admin.display(description="reason and details")
    def event_details(self, obj: Any) -> SafeString:
        if not obj.reason and not data_pairs(obj.data):
            return mark_safe("-")
        reason = format_html('<span class="bo-note">{}</span> ', obj.reason) if obj.reason else ""
        data = data_html(obj.data) if data_pairs(obj.data) else ""
        return format_html("{}{}", reason, data)


class EventInline(EventColumns, ReadOnlyInline):
    """An audit trail on its parent's page, in four columns that fit a detail page from 1024 px."""

    fields = ("event_time", "event_change", "event_actor", "event_details")
    readonly_fields = fields
    classes = ("bo-events",)


class EventAdmin(EventColumns, ReadOnlyAdmin):
    """The list of an audit table, fit for 1366 px: the time (links the event), the number of its
    object (``subject``: a path such as ``refund__refund_no``), the change, who acted, the reason."""

    subject = ""
    list_display = ("event_time", "event_subject", "event_change", "event_actor", "reason")
    list_display_links = ("event_time",)

    @admin.display(description="object")
    def event_subject(self, obj: Any) -> SafeString:
        value: Any = obj
        for part in self.subject.split("__"):
            value = getattr(value, part, None)
        return ident_html(value)
