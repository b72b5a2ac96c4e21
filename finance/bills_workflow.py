"""Finance workflow on bill discrepancies: assign, resolve with a note, auto-repair by gateway query.

Only finance may act (``refunds.export_finance`` or ``refunds.approve_refund``). Every action
locks the discrepancy, re-checks its state and writes a ``BillDiscrepancyEvent`` with the acting
user in the same transaction. Auto-repair asks the gateway through the payment / refund services
(gateway I/O outside any transaction), then re-checks our row against what the bill said.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from core.audit import Actor
from core.errors import Conflict, DomainError, ValidationFailed
from core.money import format_yuan
from core.transitions import event, transition
from finance.models import BillDiscrepancy
from payments.models import Payment
from payments.services import payment_sync
from refunds.models import Refund
from refunds.services import NotAllowed, refund_sync

Kind = BillDiscrepancy.Kind
DStatus = BillDiscrepancy.Status
REPAIRABLE = (Kind.MISSING_LOCAL, Kind.STATUS_MISMATCH)
FINANCE_PERMS = ("refunds.export_finance", "refunds.approve_refund")


def is_finance(user) -> bool:
    return bool(user and user.is_active and any(user.has_perm(p) for p in FINANCE_PERMS))


def _check_finance(user) -> None:
    if not is_finance(user):
        raise NotAllowed("Bill discrepancies are for finance (refunds.export_finance or refunds.approve_refund).")


@transaction.atomic
def bill_discrepancy_assign(*, discrepancy_id: int, user, assignee=None) -> BillDiscrepancy:
    """Assign to ``assignee`` (default: the acting user). Not for resolved ones."""
    _check_finance(user)
    d = BillDiscrepancy.objects.select_for_update().get(pk=discrepancy_id)
    d.assigned_to = assignee or user
    transition(
        d,
        to=DStatus.ASSIGNED,
        actor=Actor.user(user),
        action="assign",
        data={"assigned_to": d.assigned_to_id},
        update_fields=["assigned_to"],
    )
    return d


@transaction.atomic
def bill_discrepancy_resolve(
    *, discrepancy_id: int, user, note: str, now: datetime | None = None, auto_repaired: bool = False
) -> BillDiscrepancy:
    """Close a discrepancy with a note saying what was done (required)."""
    _check_finance(user)
    if not note.strip():
        raise ValidationFailed("A note is required.", details={"note": ["Required."]})
    d = BillDiscrepancy.objects.select_for_update().get(pk=discrepancy_id)
    if d.status == DStatus.RESOLVED:
        return d  # twice is not an error
    d.resolution_note = note.strip()
    d.resolved_by = user
    d.resolved_at = now or timezone.now()
    d.auto_repaired = auto_repaired
    transition(
        d,
        to=DStatus.RESOLVED,
        actor=Actor.user(user),
        action="auto_repair" if auto_repaired else "resolve",
        reason=note,
        update_fields=["resolution_note", "resolved_by", "resolved_at", "auto_repaired"],
    )
    return d


def local_row(d: BillDiscrepancy) -> Payment | Refund | None:
    if d.subject == "refund":
        return Refund.objects.select_related("payment").filter(refund_no=d.reference).first()
    return Payment.objects.filter(payment_no=d.reference).first()


def agrees_with_bill(d: BillDiscrepancy, local: Payment | Refund | None) -> bool:
    """Our row now says what the bill said (the discrepancy is gone)."""
    return local is not None and local.status == d.their_status and local.amount_fen == d.their_amount_fen


def bill_discrepancy_auto_repair(*, discrepancy_id: int, user) -> tuple[BillDiscrepancy, str]:
    """Ask the gateway about the payment / refund and apply its answer, then re-check against the
    bill. Returns the discrepancy and a message for the person who asked."""
    _check_finance(user)
    d = BillDiscrepancy.objects.get(pk=discrepancy_id)
    if d.status == DStatus.RESOLVED:
        return d, "already resolved"
    if d.kind not in REPAIRABLE:
        raise Conflict(
            f'"{d.get_kind_display()}" cannot be repaired by asking the gateway: check it and resolve it with a note.',
            code="not_repairable",
        )
    local = local_row(d)
    if local is None:
        raise Conflict(f"{d.reference} is not known here: a query cannot repair it.", code="not_repairable")
    actor = Actor.user(user)
    try:
        if isinstance(local, Payment):
            payment_sync(payment_no=local.payment_no, actor=actor)
        else:
            refund_sync(refund_id=local.pk, actor=actor)
    except DomainError as exc:
        _note(d, actor=actor, note=f"auto-repair failed: {exc.message}")
        raise
    local = local_row(d)
    if agrees_with_bill(d, local):
        d = bill_discrepancy_resolve(
            discrepancy_id=d.pk, user=user, note="repaired by a gateway query; matches the bill", auto_repaired=True
        )
        return d, "repaired"
    message = (
        f"asked the gateway; still differs: ours {_side_text(local.amount_fen, local.status)}, "
        f"the bill {_side_text(d.their_amount_fen, d.their_status)}"
    )
    _note(d, actor=actor, note=message)
    return d, message


def _side_text(amount_fen: int | None, status: str) -> str:
    """``¥15.00 (succeeded)``: one side of a discrepancy in a message for people."""
    amount = format_yuan(amount_fen) if amount_fen is not None else "nothing"
    return f"{amount} ({status.replace('_', ' ')})" if status else amount


@transaction.atomic
def _note(d: BillDiscrepancy, *, actor: Actor, note: str) -> None:
    d = BillDiscrepancy.objects.select_for_update().get(pk=d.pk)
    event(d, action="auto_repair_attempt", actor=actor, reason=note)
