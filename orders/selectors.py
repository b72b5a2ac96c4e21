"""Reads of orders for the API and the pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from core.errors import Conflict
from lockers.models import Compartment, DoorPurpose, PickupCode
from orders.models import Order


def order_list_for_user(*, user) -> QuerySet[Order]:
    return Order.objects.filter(user=user).select_related("compartment__cabinet", "parent")


@dataclass(frozen=True)
class RentalClock:
    """Where a rental stands at ``now``, for the API and the pages.

    ``time_left_seconds``: paid time left (0 once it is over; None unless the rental runs).
    ``pickup_until``: the pickup code's validity (the paid time plus ``PICKUP_CODE_GRACE``).
    ``reopen_until``: after the pickup, until when the customer may open again.
    ``door``: what asking to open the door does now: ``pickup``, ``reopen`` (``reopen_refusal`` is None),
    ``overdue`` (past ``pickup_until``: asking answers with the overtime to pay) or "" (nothing: not a running
    rental, or the door cannot be opened again).
    """

    time_left_seconds: int | None = None
    pickup_until: datetime | None = None
    reopen_until: datetime | None = None
    door: str = ""


def reopen_refusal(order: Order, *, now: datetime) -> Conflict | None:
    """Why the customer cannot open the door of their completed rental again at ``now`` (None: they can): the
    one rule the door-open API (``orders.services.order_open_door``) and the pages (``rental_clock``'s
    ``door``) apply. 409 ``rental_completed`` after the ``RENTAL_REOPEN`` window, ``compartment_taken`` once
    the compartment is no longer free (rented again), ``cabinet_offline``. Reads ``order.compartment`` and its
    cabinet as loaded; the door-open command checks the compartment again under its row lock."""
    reopen_until = order.completed_at + settings.RENTAL_REOPEN
    if now > reopen_until:
        return Conflict(
            "This rental is over: ask the staff to open the door.",
            code="rental_completed",
            details={
                "completed_at": timezone.localtime(order.completed_at).isoformat(),
                "reopen_until": timezone.localtime(reopen_until).isoformat(),
            },
        )
    compartment = order.compartment
    if compartment is None or compartment.status != Compartment.Status.FREE:
        return Conflict(
            "This compartment has been rented again: ask the staff to open it.",
            code="compartment_taken",
            details={"compartment_id": order.compartment_id},
        )
    if not compartment.cabinet.is_online:
        return Conflict(
            "This cabinet is offline.", code="cabinet_offline", details={"compartment_id": order.compartment_id}
        )
    return None


def rental_clock(order: Order, *, code: PickupCode | None, now: datetime) -> RentalClock:
    """``code``: the order's active pickup code, if any (``pickup_codes_active``)."""
    if order.kind != Order.Kind.LOCKER_RENTAL:
        return RentalClock()
    if order.completed_at is not None:
        reopen_until = order.completed_at + settings.RENTAL_REOPEN
        door = DoorPurpose.REOPEN.value if reopen_refusal(order, now=now) is None else ""
        return RentalClock(reopen_until=reopen_until, door=door)
    running = order.status in (Order.Status.PAID, Order.Status.PARTIALLY_REFUNDED)
    if not running or code is None or order.rental_ends_at is None:
        return RentalClock()
    from orders.overtime import overtime_asked  # it builds on orders.services, which reads this module

    left = max(int((order.rental_ends_at - now).total_seconds()), 0)
    door = "overdue" if overtime_asked(order, pickup_until=code.valid_until, now=now) else DoorPurpose.PICKUP.value
    return RentalClock(time_left_seconds=left, pickup_until=code.valid_until, door=door)
