"""Abandoned compartments: rentals overdue by more than ``ABANDONED_AFTER``, for operations to clear.

``rentals_abandon_overdue`` (beat job ``orders.rentals_abandon_overdue``, every ``ABANDONED_INTERVAL_SECONDS``)
moves each such rental paid|partially_refunded -> abandoned (``abandoned_at``, an order event), row-locked and
skipping rows another worker holds, so two runs at once abandon each rental once; then it records the overtime
as owed: the rental's unpaid overtime order, priced up to then and payable for ``OVERTIME_OWED_PAYABLE``
(``orders.overtime``), which finance sees, collected as ``overtime_collection`` decides.

Operations see the abandoned rentals whose compartment is still theirs in admin ("Abandoned rentals") and
clear each one with ``rental_clear_abandoned``: a staff door-open with who and why, the pickup code closed and
the compartment freed, all audited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from core.audit import Actor
from core.errors import Conflict, DomainError, ValidationFailed
from lockers import services as lockers
from lockers.models import Compartment, DoorPurpose
from orders.models import Order
from orders.overtime import PAY_SCORE_BILLING, overtime_order_for_rental
from orders.services import bill_after_use, order_event, order_transition

logger = logging.getLogger(__name__)
Status = Order.Status
RUNNING = (Status.PAID, Status.PARTIALLY_REFUNDED)
JOB = Actor.system("abandon_job")


def _overdue(now: datetime) -> Q:
    return Q(
        kind=Order.Kind.LOCKER_RENTAL,
        status__in=RUNNING,
        completed_at__isnull=True,
        abandoned_at__isnull=True,
        rental_ends_at__lt=now - settings.ABANDONED_AFTER,
    )


class ClearNotAllowed(DomainError):
    code = "not_allowed"
    http_status = 403


@dataclass(frozen=True)
class AbandonRun:
    abandoned: list[str]
    owed: list[str]  # overtime orders recorded as owed


def rentals_abandon_overdue(*, now: datetime | None = None, batch: int = 200) -> AbandonRun:
    """Abandon up to ``batch`` rentals overdue by more than ``ABANDONED_AFTER`` at ``now`` and record their
    overtime as owed; also records it for abandoned rentals that have no overtime order (a run stopped between
    the two steps). Idempotent; several runs at once share the work."""
    now = now or timezone.now()
    abandoned = []
    for pk in Order.objects.filter(_overdue(now)).order_by("rental_ends_at").values_list("pk", flat=True)[:batch]:
        with transaction.atomic():
            rental = Order.objects.select_for_update(skip_locked=True).filter(_overdue(now), pk=pk).first()
            if rental is None:
                continue  # another run holds it, or it changed since our look
            overdue = int((now - rental.rental_ends_at).total_seconds())
            rental.abandoned_at = now
            order_transition(
                rental,
                to=Status.ABANDONED,
                actor=JOB,
                action="abandon",
                reason=f"overdue by more than {int(settings.ABANDONED_AFTER.total_seconds())} s",
                data={"overdue_seconds": overdue, "rental_ends_at": rental.rental_ends_at.isoformat()},
            )
            bill_after_use(rental)  # paid after use: its service order bills the time up to now
            abandoned.append(rental.order_no)
    owed = []
    unrecorded = (
        Order.objects.filter(kind=Order.Kind.LOCKER_RENTAL, status=Status.ABANDONED, overtime_orders__isnull=True)
        .exclude(service_orders__status__in=PAY_SCORE_BILLING)  # billed by their service order
        .select_related("compartment")[:batch]
    )
    for rental in unrecorded:
        overtime = overtime_order_for_rental(rental_id=rental.pk, actor=JOB, now=now, owed=True)
        owed.append(overtime.order_no)
    if abandoned:
        logger.warning("abandoned %d overdue rentals: %s", len(abandoned), ", ".join(abandoned))
    return AbandonRun(abandoned=abandoned, owed=owed)


def abandoned_to_clear() -> QuerySet[Order]:
    """Operations' task list: abandoned rentals whose compartment is still theirs, oldest first."""
    return (
        Order.objects.filter(
            kind=Order.Kind.LOCKER_RENTAL,
            abandoned_at__isnull=False,
            compartment__status=Compartment.Status.OCCUPIED,
            compartment__reference=F("order_no"),
        )
        .select_related("compartment__cabinet", "user")
        .order_by("abandoned_at")
    )


@transaction.atomic
def rental_clear_abandoned(*, order_id: int, staff, reason: str) -> Order:
    """Operations open the abandoned rental's compartment and clear it: a ``staff`` door-open command with
    who (``staff``) and why (``reason``, required), the pickup code cancelled and the compartment freed, and an
    order event ``clear``. The owed overtime stays as it is, for finance.

    Raises 403 ``not_allowed`` without ``orders.clear_abandoned``, 400 ``invalid_input`` (no reason), 409
    ``not_abandoned`` or ``already_cleared``; nothing is written then.
    """
    if not staff.has_perm("orders.clear_abandoned"):
        raise ClearNotAllowed("Clearing abandoned compartments needs the orders.clear_abandoned permission.")
    reason = reason.strip()
    if not reason:
        raise ValidationFailed("Say why the compartment is opened.", details={"reason": ["Required."]})
    rental = Order.objects.select_for_update(of=("self",)).select_related("compartment").get(pk=order_id)
    if rental.abandoned_at is None:
        raise Conflict("This rental is not abandoned.", code="not_abandoned", details={"status": rental.status})
    compartment = rental.compartment
    if compartment.status != Compartment.Status.OCCUPIED or compartment.reference != rental.order_no:
        raise Conflict("This compartment has been cleared already.", code="already_cleared")
    actor = Actor.user(staff)
    command = lockers.door_open(
        compartment_id=compartment.pk, reference=rental.order_no, actor=actor, purpose=DoorPurpose.STAFF, reason=reason
    )
    lockers.pickup_code_cancel(reference=rental.order_no, actor=actor, reason="abandoned: cleared")
    lockers.compartment_release(
        compartment_id=compartment.pk, reference=rental.order_no, actor=actor, reason=f"abandoned, cleared: {reason}"
    )
    data = {"door_command": command.pk, "compartment": str(compartment)}
    order_event(rental, action="clear", actor=actor, reason=reason, data=data)
    return rental
