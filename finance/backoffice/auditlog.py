"""The global audit log: the four event tables and the wallet ledger as one UNION, filtered, newest first,
one page at a time. A ledger row shows its type as the action and its signed amount (fen) as the reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django import forms
from django.db.models import CharField, F, QuerySet, Value
from django.db.models.functions import Cast
from django.utils import timezone

from lockers.models import LockerEvent
from orders.models import OrderEvent
from payments.models import PaymentEvent
from refunds.models import RefundEvent
from wallets.models import WalletTransaction

PAGE_SIZE = 50


@dataclass(frozen=True)
class Source:
    kind: str
    model: type
    perm: str
    subject: str  # the field that names the object (order_no, payment_no...)
    action: str = "action"  # the ledger has a type where events have an action
    is_event: bool = True  # AuditEvent rows have statuses and a reason; ledger rows do not


SOURCES = (
    Source("order", OrderEvent, "orders.view_orderevent", "order__order_no"),
    Source("payment", PaymentEvent, "payments.view_paymentevent", "payment__payment_no"),
    Source("refund", RefundEvent, "refunds.view_refundevent", "refund__refund_no"),
    Source("locker", LockerEvent, "lockers.view_lockerevent", "reference"),
    Source("ledger", WalletTransaction, "wallets.view_wallettransaction", "reference", "type", is_event=False),
)


def visible_sources(user) -> list[Source]:
    return [s for s in SOURCES if user.has_perm(s.perm)]


class AuditFilter(forms.Form):
    object_type = forms.ChoiceField(required=False, choices=[("", "all")] + [(s.kind, s.kind) for s in SOURCES])
    subject = forms.CharField(required=False, max_length=40, help_text="order, payment or refund number")
    actor = forms.CharField(required=False, max_length=80, help_text="exact (staff:3) or a kind (staff:)")
    action = forms.CharField(required=False, max_length=64)
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


def day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _one(source: Source, filters: dict) -> QuerySet:
    rows = source.model.objects.all()
    if filters.get("actor"):
        actor = filters["actor"]
        rows = rows.filter(actor__startswith=actor) if actor.endswith(":") else rows.filter(actor=actor)
    if filters.get("action"):
        rows = rows.filter(**{source.action: filters["action"]})
    if filters.get("subject"):
        rows = rows.filter(**{source.subject: filters["subject"]})
    if filters.get("date_from"):
        rows = rows.filter(created_at__gte=day_start(filters["date_from"]))
    if filters.get("date_to"):
        rows = rows.filter(created_at__lt=day_start(filters["date_to"] + timedelta(days=1)))
    # every column an annotation, in one order, so that the UNION lines up
    return rows.annotate(
        e_at=F("created_at"),
        e_id=F("id"),
        e_kind=Value(source.kind, output_field=CharField()),
        e_subject=F(source.subject),
        e_action=F(source.action),
        e_from=F("from_status") if source.is_event else Value("", output_field=CharField()),
        e_to=F("to_status") if source.is_event else Value("", output_field=CharField()),
        e_actor=F("actor"),
        e_reason=F("reason") if source.is_event else Cast("amount_fen", CharField()),
    ).values("e_at", "e_id", "e_kind", "e_subject", "e_action", "e_from", "e_to", "e_actor", "e_reason")


def audit_log_query(sources: list[Source], filters: dict) -> QuerySet | None:
    """One queryset over the chosen tables (``None`` when nothing is visible), newest first."""
    chosen = [s for s in sources if not filters.get("object_type") or s.kind == filters["object_type"]]
    if not chosen:
        return None
    first, *rest = [_one(s, filters) for s in chosen]
    combined = first.union(*rest, all=True) if rest else first
    return combined.order_by("-e_at", "-e_id")


def audit_log_page(query: QuerySet | None, page: int) -> tuple[list[dict], bool]:
    """Rows of one page and whether a next page exists (no COUNT over the union)."""
    if query is None:
        return [], False
    start = (page - 1) * PAGE_SIZE
    rows = list(query[start : start + PAGE_SIZE + 1])
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
