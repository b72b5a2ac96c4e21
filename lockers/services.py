"""Every write to lockers: one function per transition, row-locked, re-checked, audited."""

from __future__ import annotations

import secrets
from datetime import datetime

from django.db import IntegrityError, transaction

from config.audit import Actor
from config.errors import Conflict, InvalidTransition, NotFound
from lockers.drivers import get_door_driver
from lockers.models import Compartment, LockerEvent, PickupCode

Status = Compartment.Status


def _locked(compartment_id: int) -> Compartment:
    compartment = Compartment.objects.select_for_update().filter(pk=compartment_id).first()
    if compartment is None:
        raise NotFound("Compartment not found.", details={"compartment_id": compartment_id})
    return compartment


def _move(compartment: Compartment, *, to: str, reference: str, actor: Actor, action: str, reason: str = "") -> None:
    before = compartment.status
    compartment.status = to
    compartment.reference = reference if to in (Status.RESERVED, Status.OCCUPIED) else ""
    compartment.save(update_fields=["status", "reference", "updated_at"])
    LockerEvent.objects.create(
        compartment=compartment,
        action=action,
        from_status=before,
        to_status=to,
        actor=str(actor),
        reason=reason,
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


@transaction.atomic
def compartment_occupy(*, compartment_id: int, reference: str, actor: Actor) -> Compartment:
    """reserved -> occupied when the order holding it is paid."""
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


@transaction.atomic
def pickup_code_cancel(*, reference: str, actor: Actor, reason: str = "") -> int:
    codes = list(PickupCode.objects.select_for_update().filter(reference=reference, status=PickupCode.Status.ACTIVE))
    for code in codes:
        code.status = PickupCode.Status.CANCELLED
        code.save(update_fields=["status"])
        LockerEvent.objects.create(
            compartment_id=code.compartment_id,
            action="pickup_code_cancelled",
            actor=str(actor),
            reference=reference,
            reason=reason,
        )
    return len(codes)


@transaction.atomic
def door_open(*, compartment_id: int, reference: str, actor: Actor) -> None:
    """Send the open-door command (through the configured driver) for the order holding the compartment."""
    compartment = _locked(compartment_id)
    if compartment.reference != reference or compartment.status != Status.OCCUPIED:
        raise Conflict("This compartment is not held by this order.", code="door_not_yours")
    get_door_driver().open(compartment=compartment, reference=reference, actor=str(actor))
