"""Timelines: every audit row and gateway notification about one payment, oldest first."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q

from config.money import format_yuan
from orders.models import OrderEvent
from payments.models import GatewayNotification, Payment
from refunds.models import Refund, RefundEvent
from wallets.models import WalletTransaction


@dataclass(frozen=True)
class TimelineRow:
    at: datetime
    source: str  # payment / order / refund / notification / ledger
    subject: str  # payment_no, order_no, refund_no...
    action: str
    from_status: str = ""
    to_status: str = ""
    actor: str = ""
    note: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    notification: GatewayNotification | None = None

    @property
    def raw_body(self) -> str:
        """The gateway's notification body as received (no secret of ours is in it)."""
        if self.notification is None:
            return ""
        return bytes(self.notification.body).decode("utf-8", errors="replace")

    @property
    def data_text(self) -> str:
        return data_text(self.data)


def data_text(data: dict[str, Any]) -> str:
    """``key=value`` pairs; an amount in fen (``amount_fen=1000``) is shown in yuan (``amount=¥10.00``)."""
    return ", ".join(_pair(key, value) for key, value in (data or {}).items() if value not in ("", None))


def _pair(key: str, value: Any) -> str:
    if key.endswith("_fen") and isinstance(value, int) and not isinstance(value, bool):
        return f"{key.removesuffix('_fen')}={format_yuan(value)}"
    return f"{key}={value}"


def _event_rows(events, source: str, subject_of) -> list[TimelineRow]:
    return [
        TimelineRow(
            at=e.created_at,
            source=source,
            subject=subject_of(e),
            action=e.action,
            from_status=e.from_status,
            to_status=e.to_status,
            actor=e.actor,
            note=e.reason,
            data=e.data,
        )
        for e in events
    ]


def notification_state(row: GatewayNotification) -> str:
    if not row.verified:
        return "not verified"
    if row.error:
        return "error"
    if row.duplicate:
        return "duplicate"
    return "processed" if row.processed_at else "not processed"


def payment_timeline(payment: Payment, *, refunds: list[Refund] | None = None) -> list[TimelineRow]:
    """Payment events, its order's events, its refunds' events, gateway notifications (inbox rows
    linked to it or naming it or one of its refunds) and wallet ledger rows that reference it."""
    refunds = list(payment.refunds.all()) if refunds is None else refunds
    refund_nos = [r.refund_no for r in refunds]
    order = payment.order
    rows = _event_rows(payment.events.all(), "payment", lambda e: payment.payment_no)
    rows += _event_rows(OrderEvent.objects.filter(order=order), "order", lambda e: order.order_no)
    rows += _event_rows(
        RefundEvent.objects.filter(refund__payment=payment).select_related("refund"),
        "refund",
        lambda e: e.refund.refund_no,
    )
    inbox = GatewayNotification.objects.filter(
        Q(payment=payment) | Q(reference=payment.payment_no) | Q(reference__in=refund_nos)
    ).defer("headers")
    rows += [
        TimelineRow(
            at=n.received_at,
            source="notification",
            subject=n.reference or "?",
            action=n.event_type or "(unparsed)",
            actor=f"gateway:{n.gateway}",
            note=n.error,
            to_status=notification_state(n),
            notification=n,
        )
        for n in inbox
    ]
    ledger = WalletTransaction.objects.filter(
        reference__in=[payment.payment_no, order.order_no, *refund_nos]
    ).select_related("wallet__user")
    rows += [
        TimelineRow(
            at=t.created_at,
            source="ledger",
            subject=t.reference,
            action=t.type,
            actor=t.actor,
            data={"amount_fen": t.amount_fen, "balance_after_fen": t.balance_after_fen},
        )
        for t in ledger
    ]
    return sorted(rows, key=lambda r: r.at)
