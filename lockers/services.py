"""Every write to lockers: one function per transition, row-locked, re-checked, audited."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.audit import Actor
from core.errors import Conflict, InvalidTransition, NotFound, ValidationFailed
from core.transitions import transition
from lockers.drivers import get_door_driver
from lockers.models import (
    DOOR_OPEN_COMMAND,
    DOOR_OPEN_EXPIRED,
    DOOR_OPEN_SENT,
    Compartment,
    DoorPurpose,
    LockerEvent,
    PickupCode,
)

logger = logging.getLogger(__name__)

Status = Compartment.Status


def _locked(compartment_id: int) -> Compartment:
    compartment = Compartment.objects.select_for_update().filter(pk=compartment_id).first()
    if compartment is None:
        raise NotFound("Compartment not found.", details={"compartment_id": compartment_id})
    return compartment


def _move(compartment: Compartment, *, to: str, reference: str, actor: Actor, action: str, reason: str = "") -> None:
    """``core.transitions.transition`` with the compartment's holder: set while reserved or occupied."""
    compartment.reference = reference if to in (Status.RESERVED, Status.OCCUPIED) else ""
    transition(
        compartment,
        to=to,
        actor=actor,
        action=action,
        reason=reason,
        update_fields=["reference", "updated_at"],
        reference=reference,
    )


@transaction.atomic
def compartment_reserve(*, compartment_id: int, reference: str, actor: Actor) -> Compartment:
    """free -> reserved for an order. The loser of a race gets ``compartment_unavailable``."""
    compartment = _locked(compartment_id)
    if not compartment.cabinet.is_online:
        raise Conflict("This cabinet is offline.", code="cabinet_offline", details={"compartment_id": compartment_id})
    if compartment.status != Status.FREE:
        raise Conflict(
            "This compartment is not free.",
            code="compartment_unavailable",
            details={"compartment_id": compartment_id, "status": compartment.status},
        )
    _move(compartment, to=Status.RESERVED, reference=reference, actor=actor, action="reserve")
    return compartment


@transaction.atomic(savepoint=False)
def compartment_occupy(*, compartment_id: int, reference: str, actor: Actor) -> Compartment:
    """reserved -> occupied when the order holding it is paid.

    No savepoint of its own when nested: its one refusal is raised before anything is written, and its
    caller (an order being paid) lets it roll back the whole transaction.
    """
    compartment = _locked(compartment_id)
    if compartment.status == Status.OCCUPIED and compartment.reference == reference:
        return compartment
    if compartment.status != Status.RESERVED or compartment.reference != reference:
        raise InvalidTransition("compartment", compartment.status, Status.OCCUPIED)
    _move(compartment, to=Status.OCCUPIED, reference=reference, actor=actor, action="occupy")
    return compartment


@transaction.atomic
def compartment_release(*, compartment_id: int, reference: str, actor: Actor, reason: str = "") -> Compartment:
    """reserved|occupied -> free, only by the order holding it; releasing twice is a no-op."""
    compartment = _locked(compartment_id)
    if compartment.reference != reference or compartment.status not in (Status.RESERVED, Status.OCCUPIED):
        return compartment
    _move(compartment, to=Status.FREE, reference=reference, actor=actor, action="release", reason=reason)
    return compartment


@transaction.atomic
def compartment_set_out_of_service(*, compartment_id: int, actor: Actor, reason: str) -> Compartment:
    compartment = _locked(compartment_id)
    if compartment.status != Status.FREE:
        raise InvalidTransition("compartment", compartment.status, Status.OUT_OF_SERVICE)
    _move(compartment, to=Status.OUT_OF_SERVICE, reference="", actor=actor, action="out_of_service", reason=reason)
    return compartment


@transaction.atomic
def compartment_return_to_service(*, compartment_id: int, actor: Actor, reason: str = "") -> Compartment:
    compartment = _locked(compartment_id)
    if compartment.status != Status.OUT_OF_SERVICE:
        raise InvalidTransition("compartment", compartment.status, Status.FREE)
    _move(compartment, to=Status.FREE, reference="", actor=actor, action="return_to_service", reason=reason)
    return compartment


@transaction.atomic(savepoint=False)
def pickup_code_issue(*, compartment_id: int, reference: str, valid_until: datetime, actor: Actor) -> PickupCode:
    """Issue the (one) active pickup code for an order; issuing again returns the same code.

    No savepoint of its own when nested: its one refusal (``pickup_code_exhausted``) is raised before
    anything is written, and its caller (an order being paid) lets it roll back the whole transaction.
    Each draw keeps its own savepoint: a clash (IntegrityError) is survived there.
    """
    existing = PickupCode.objects.filter(reference=reference, status=PickupCode.Status.ACTIVE).first()
    if existing:
        return existing
    for _ in range(20):
        try:
            with transaction.atomic():
                code = PickupCode.objects.create(
                    compartment_id=compartment_id,
                    reference=reference,
                    valid_until=valid_until,
                    code=f"{secrets.randbelow(1_000_000):06d}",
                )
        except IntegrityError:
            continue  # the same code is active on this compartment: draw again
        LockerEvent.objects.create(
            compartment_id=compartment_id, action="pickup_code_issued", actor=str(actor), reference=reference
        )
        return code
    raise Conflict("Could not draw a unique pickup code.", code="pickup_code_exhausted")


@transaction.atomic(savepoint=False)
def pickup_code_extend(*, reference: str, valid_until: datetime, actor: Actor, reason: str = "") -> int:
    """Move the active pickup code's validity later (overtime was paid, or a rental
    paid after use runs for as long as it can be billed); never earlier. Returns how many moved.

    No savepoint of its own when nested: it refuses nothing.
    """
    codes = list(PickupCode.objects.select_for_update().filter(reference=reference, status=PickupCode.Status.ACTIVE))
    moved = [code for code in codes if code.valid_until < valid_until]
    for code in moved:
        before = code.valid_until
        code.valid_until = valid_until
        code.save(update_fields=["valid_until"])
        LockerEvent.objects.create(
            compartment_id=code.compartment_id,
            action="pickup_code_extended",
            actor=str(actor),
            reference=reference,
            reason=reason,
            data={"valid_until_before": before.isoformat(), "valid_until": valid_until.isoformat()},
        )
    return len(moved)


@transaction.atomic
def pickup_code_cancel(*, reference: str, actor: Actor, reason: str = "") -> int:
    """active -> cancelled (the order was refunded): the code opens nothing any more. Returns how many."""
    return _pickup_code_close(reference=reference, to=PickupCode.Status.CANCELLED, actor=actor, reason=reason)


@transaction.atomic(savepoint=False)
def pickup_code_use(*, reference: str, actor: Actor, reason: str = "") -> int:
    """active -> used at the end of the rental (the pickup): the code opens nothing any more. Returns how many.

    No savepoint of its own when nested: it refuses nothing.
    """
    return _pickup_code_close(reference=reference, to=PickupCode.Status.USED, actor=actor, reason=reason)


def _pickup_code_close(*, reference: str, to: str, actor: Actor, reason: str) -> int:
    codes = list(PickupCode.objects.select_for_update().filter(reference=reference, status=PickupCode.Status.ACTIVE))
    for code in codes:
        transition(
            code, to=to, actor=actor, action=f"pickup_code_{to}", reason=reason, update_fields=[], reference=reference
        )
    return len(codes)


@transaction.atomic(savepoint=False)
def door_open(*, compartment_id: int, reference: str, actor: Actor, purpose: str, reason: str = "") -> LockerEvent:
    """Record an open-door command (a ``door_open_command`` LockerEvent with its ``purpose`` and the actor) and
    send it to the door driver after commit (Celery task ``lockers.door_open_send``), never under the row lock.

    ``purpose`` (``DoorPurpose``): ``delivery`` (right after payment) and ``pickup`` need the compartment
    occupied by ``reference``; ``reopen`` (after the pickup) needs it free, so that nobody else's rental is
    opened; ``staff`` opens whatever the state and needs a ``reason``. The customer's own openings
    (``pickup``, ``reopen``) need the cabinet online. Raises ``Conflict`` (409 ``door_not_yours``,
    ``compartment_taken``, ``cabinet_offline``) or ``ValidationFailed`` before anything is written, so it
    opens no savepoint of its own when nested: its caller rolls back as a whole. Returns the command.
    """
    if purpose not in DoorPurpose.values:
        raise ValidationFailed("Unknown door-open purpose.", details={"purpose": purpose})
    compartment = _locked(compartment_id)
    held = compartment.status == Status.OCCUPIED and compartment.reference == reference
    if purpose in (DoorPurpose.DELIVERY, DoorPurpose.PICKUP) and not held:
        raise Conflict("This compartment is not held by this order.", code="door_not_yours")
    if purpose == DoorPurpose.REOPEN and compartment.status != Status.FREE:
        raise Conflict(
            "This compartment has been rented again: ask the staff to open it.",
            code="compartment_taken",
            details={"compartment_id": compartment_id},
        )
    if purpose == DoorPurpose.STAFF and not reason.strip():
        raise ValidationFailed("A staff opening needs a reason.", details={"reason": ["Required."]})
    if purpose in (DoorPurpose.PICKUP, DoorPurpose.REOPEN) and not compartment.cabinet.is_online:
        raise Conflict("This cabinet is offline.", code="cabinet_offline", details={"compartment_id": compartment_id})
    command = LockerEvent.objects.create(
        compartment=compartment,
        action=DOOR_OPEN_COMMAND,
        actor=str(actor),
        reason=reason[:255],
        reference=reference,
        data={"purpose": purpose, "label": compartment.label},
    )
    from lockers.tasks import door_open_send_task

    transaction.on_commit(lambda: door_open_send_task.delay(command.pk), robust=True)
    return command


def door_open_send(*, command_id: int, now: datetime | None = None) -> bool:
    """Hand a recorded open-door command to the configured driver, outside any transaction. Once: a command
    already sent is not sent again (the task may be delivered twice). A command older than
    ``LOCKER_DOOR_COMMAND_TTL`` (a queue that stood still) is not sent but recorded as expired, so that a
    door never opens minutes after it was asked for. Returns whether the driver was called."""
    now = now or timezone.now()
    command = LockerEvent.objects.select_related("compartment__cabinet").get(pk=command_id, action=DOOR_OPEN_COMMAND)
    done = LockerEvent.objects.filter(action__in=(DOOR_OPEN_SENT, DOOR_OPEN_EXPIRED), data__command_id=command_id)
    if done.exists():
        return False
    outcome = {"command_id": command_id, "purpose": command.data.get("purpose", "")}
    age = now - command.created_at
    if age > settings.LOCKER_DOOR_COMMAND_TTL:
        logger.error("door-open command %s for %s is %s old: not sent", command_id, command.reference, age)
        LockerEvent.objects.create(
            compartment=command.compartment,
            action=DOOR_OPEN_EXPIRED,
            actor=str(Actor.system("door_driver")),
            reference=command.reference,
            reason=f"not sent: {int(age.total_seconds())} s old",
            data=outcome,
        )
        return False
    get_door_driver().open(compartment=command.compartment, reference=command.reference, actor=command.actor)
    LockerEvent.objects.create(
        compartment=command.compartment,
        action=DOOR_OPEN_SENT,
        actor=str(Actor.system("door_driver")),
        reference=command.reference,
        data=outcome,
    )
    return True
