"""Streaming CSV exports of payments, refunds and wallet ledger rows for a date range."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from typing import Any

from django import forms
from django.db.models import QuerySet

from payments.models import Payment
from refunds.backoffice.auditlog import day_start
from refunds.models import Refund
from wallets.models import WalletTransaction

MAX_DAYS = 366
DATASETS: dict[str, tuple[list[str], Any]] = {}


def _dataset(name: str, header: list[str]):
    def register(fn):
        DATASETS[name] = (header, fn)
        return fn

    return register


@_dataset(
    "payments",
    [
        "payment_no",
        "order_no",
        "channel",
        "status",
        "amount_fen",
        "refunded_fen",
        "gateway_trade_no",
        "flag",
        "created_at",
        "paid_at",
    ],
)
def _payments(start, end) -> QuerySet:
    return (
        Payment.objects.filter(created_at__gte=start, created_at__lt=end)
        .order_by("id")
        .values_list(
            "payment_no",
            "order__order_no",
            "channel",
            "status",
            "amount_fen",
            "refunded_fen",
            "gateway_trade_no",
            "flag",
            "created_at",
            "paid_at",
        )
    )


@_dataset(
    "refunds",
    [
        "refund_no",
        "payment_no",
        "order_no",
        "channel",
        "status",
        "amount_fen",
        "source",
        "requested_by",
        "approved_by",
        "reason",
        "decision_note",
        "created_at",
        "decided_at",
        "succeeded_at",
    ],
)
def _refunds(start, end) -> QuerySet:
    return (
        Refund.objects.filter(created_at__gte=start, created_at__lt=end)
        .order_by("id")
        .values_list(
            "refund_no",
            "payment__payment_no",
            "order__order_no",
            "payment__channel",
            "status",
            "amount_fen",
            "source",
            "requested_by__username",
            "approved_by__username",
            "reason",
            "decision_note",
            "created_at",
            "decided_at",
            "succeeded_at",
        )
    )


@_dataset(
    "ledger",
    [
        "id",
        "created_at",
        "username",
        "type",
        "amount_fen",
        "balance_before_fen",
        "balance_after_fen",
        "reference",
        "actor",
    ],
)
def _ledger(start, end) -> QuerySet:
    return (
        WalletTransaction.objects.filter(created_at__gte=start, created_at__lt=end)
        .order_by("id")
        .values_list(
            "id",
            "created_at",
            "wallet__user__username",
            "type",
            "amount_fen",
            "balance_before_fen",
            "balance_after_fen",
            "reference",
            "actor",
        )
    )


class ExportForm(forms.Form):
    dataset = forms.ChoiceField(choices=[("payments", "payments"), ("refunds", "refunds"), ("ledger", "ledger")])
    date_from = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), help_text="inclusive")

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end:
            if end < start:
                raise forms.ValidationError("The end date is before the start date.")
            if (end - start).days >= MAX_DAYS:
                raise forms.ValidationError(f"At most {MAX_DAYS} days per export.")
        return data


class _Echo:
    """A file-like object whose ``write`` hands the line back (the csv docs' streaming recipe)."""

    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    """Dates in ISO 8601; text that a spreadsheet would run as a formula is quoted with '."""
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def export_rows(dataset: str, date_from: date, date_to: date) -> Iterator[str]:
    """CSV lines (header first) of one dataset, rows created from ``date_from`` through ``date_to``."""
    header, query = DATASETS[dataset]
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    rows: Iterable = query(day_start(date_from), day_start(date_to + timedelta(days=1))).iterator(chunk_size=2000)
    for row in rows:
        yield writer.writerow([_cell(v) for v in row])
