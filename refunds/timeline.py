"""Timelines: every audit row and gateway notification about one payment, oldest first, ready for
people: statuses by their labels, actors by name, data in yuan, raw bodies with signatures masked."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from django.db.models import Q

from core.admin import actor_names, data_pairs
from core.logging import masked_text
from lockers.models import Compartment
from orders.models import Order, OrderEvent
from payments.models import GatewayNotification, Payment
from refunds.models import Refund, RefundEvent
from wallets.models import WalletTransaction

# who may open a payment's timeline (its events and the gateway's notifications)
TIMELINE_PERMS = ("payments.view_payment", "payments.view_paymentevent", "payments.view_gatewaynotification")


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
    actor_name: str = ""  # the person behind ``actor`` (staff:2 -> finance), "" for a gateway or the system

    @property
    def raw_body(self) -> str:
        """The gateway's notification body as received, its signature masked (as the JSON of the
        refund page masks it)."""
        if self.notification is None:
            return ""
        return masked_text(bytes(self.notification.body).decode("utf-8", errors="replace"))

    @property
    def data_pairs(self) -> list[tuple[str, str]]:
        return data_pairs(self.data)

    @property
    def from_label(self) -> str:
        return status_label(self.source, self.from_status)

    @property
    def to_label(self) -> str:
        return status_label(self.source, self.to_status)

    @property
    def has_details(self) -> bool:
        return bool(self.note or self.data_pairs or self.notification)


STATUS_LABELS: dict[str, dict[str, str]] = {
    "locker": dict(Compartment.Status.choices),
    "order": dict(Order.Status.choices),
    "payment": dict(Payment.Status.choices),
    "refund": dict(Refund.Status.choices),
}


def status_label(source: str, status: str) -> str:
    """An order's, payment's or refund's status by its label (``pending_payment`` -> "Awaiting
    payment"); other words (a notification's state) as they are."""
    return STATUS_LABELS.get(source, {}).get(status, status)


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
            action=t.get_type_display(),
            actor=t.actor,
            data={"amount_fen": t.amount_fen, "balance_after_fen": t.balance_after_fen},
        )
        for t in ledger
    ]
    names = actor_names({r.actor for r in rows if r.actor})
    rows = [replace(r, actor_name=names.get(r.actor, "")) for r in rows]
    return sorted(rows, key=lambda r: r.at)
