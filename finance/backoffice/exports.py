"""Streaming CSV exports of payments, refunds and wallet ledger rows for a date range, for people
(Excel opens them right: UTF-8 with a byte-order mark).

Each amount comes twice: as people read it (``amount``: ``¥3,322.71``) and, for programs, in fen
in its own column (``amount_fen``: ``332271``). Each coded value likewise: its label (``channel``:
``WeChat Pay (QR code)``) and its code (``channel_code``: ``wechat_native``). Times are ISO 8601
in ``settings.TIME_ZONE``."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

from django import forms
from django.db.models import Model, QuerySet
from django.utils import timezone

from core.money import format_yuan
from finance.backoffice.auditlog import day_start
from payments.models import Channel, Payment
from refunds.models import Refund
from wallets.models import WalletTransaction

MAX_DAYS = 366
# dataset -> (model, [(CSV header, field path)]); rows are those created in the date range, by id
DATASETS: dict[str, tuple[type[Model], list[tuple[str, str]]]] = {
    "payments": (
        Payment,
        [
            ("payment_no", "payment_no"),
            ("order_no", "order__order_no"),
            ("channel", "channel"),
            ("status", "status"),
            ("amount_fen", "amount_fen"),
            ("refunded_fen", "refunded_fen"),
            ("gateway_trade_no", "gateway_trade_no"),
            ("flag", "flag"),
            ("created_at", "created_at"),
            ("paid_at", "paid_at"),
        ],
    ),
    "refunds": (
        Refund,
        [
            ("refund_no", "refund_no"),
            ("payment_no", "payment__payment_no"),
            ("order_no", "order__order_no"),
            ("channel", "payment__channel"),
            ("status", "status"),
            ("amount_fen", "amount_fen"),
            ("source", "source"),
            ("requested_by", "requested_by__username"),
            ("approved_by", "approved_by__username"),
            ("reason", "reason"),
            ("decision_note", "decision_note"),
            ("created_at", "created_at"),
            ("decided_at", "decided_at"),
            ("succeeded_at", "succeeded_at"),
        ],
    ),
    "ledger": (
        WalletTransaction,
        [
            ("id", "id"),
            ("created_at", "created_at"),
            ("username", "wallet__user__username"),
            ("type", "type"),
            ("amount_fen", "amount_fen"),
            ("balance_before_fen", "balance_before_fen"),
            ("balance_after_fen", "balance_after_fen"),
            ("reference", "reference"),
            ("actor", "actor"),
        ],
    ),
}


BOM = "\ufeff"  # Excel reads a CSV as UTF-8 (¥, Chinese) only after it
# (dataset, CSV header) -> the labels of its codes: the column is written as the label, then ``<header>_code``
LABELS: dict[tuple[str, str], dict[str, str]] = {
    ("payments", "channel"): dict(Channel.choices),
    ("payments", "status"): dict(Payment.Status.choices),
    ("refunds", "channel"): dict(Channel.choices),
    ("refunds", "status"): dict(Refund.Status.choices),
    ("refunds", "source"): dict(Refund.Source.choices),
    ("ledger", "type"): dict(WalletTransaction.Type.choices),
}


def _rows(dataset: str, start, end) -> QuerySet:
    model, columns = DATASETS[dataset]
    rows = model.objects.filter(created_at__gte=start, created_at__lt=end).order_by("id")
    return rows.values_list(*(path for _, path in columns))


class ExportForm(forms.Form):
    dataset = forms.ChoiceField(choices=[(name, name) for name in DATASETS])
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
    """Times in ISO 8601 (local time zone); text that a spreadsheet would run as a formula is quoted with '."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return timezone.localtime(value).isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def headers(dataset: str) -> list[str]:
    """The CSV header: every ``x_fen`` column preceded by ``x``, the same amount in yuan; every coded
    column ``x`` (its label) followed by ``x_code``."""
    out: list[str] = []
    for header, _ in DATASETS[dataset][1]:
        if header.endswith("_fen"):
            out.append(header.removesuffix("_fen"))
        out.append(header)
        if (dataset, header) in LABELS:
            out.append(f"{header}_code")
    return out


def export_rows(dataset: str, date_from: date, date_to: date) -> Iterator[str]:
    """CSV lines (a byte-order mark, the header, then the rows) of one dataset, rows created from
    ``date_from`` through ``date_to``."""
    writer = csv.writer(_Echo())
    yield BOM + writer.writerow(headers(dataset))
    columns = [(header.endswith("_fen"), LABELS.get((dataset, header))) for header, _ in DATASETS[dataset][1]]
    start, end = day_start(date_from), day_start(date_to + timedelta(days=1))
    rows: Iterable = _rows(dataset, start, end).iterator(chunk_size=2000)
    for row in rows:
        cells: list[Any] = []
        for (is_money, labels), value in zip(columns, row, strict=True):
            if is_money:
                cells.append(format_yuan(value))
            if labels is not None:
                cells.extend([labels.get(value, value), value])
            else:
                cells.append(_cell(value))
        yield writer.writerow(cells)
