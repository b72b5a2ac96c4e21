"""Reads of orders for the API and the pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import QuerySet

from lockers.models import DoorPurpose, PickupCode
from orders.models import Order


def order_list_for_user(*, user) -> QuerySet[Order]:
    return Order.objects.filter(user=user).select_related("compartment__cabinet", "parent")


@dataclass(frozen=True)
class RentalClock:
    """Where a rental stands at ``now``, for the API and the pages.

    ``time_left_seconds``: paid time left (0 once it is over; None unless the rental runs).
    ``pickup_until``: the pickup code's validity (the paid time plus ``PICKUP_CODE_GRACE``).
    ``reopen_until``: after the pickup, until when the customer may open again.
    ``door``: what asking to open the door does now: ``pickup``, ``reopen``, ``overdue`` (past
    ``pickup_until``: asking answers with the overtime to pay) or "" (nothing: not a running rental, or
    the open-again window is over).
    """

    time_left_seconds: int | None = None
    pickup_until: datetime | None = None
    reopen_until: datetime | None = None
    door: str = ""


def rental_clock(order: Order, *, code: PickupCode | None, now: datetime) -> RentalClock:
    """``code``: the order's active pickup code, if any (``pickup_codes_active``)."""
    if order.kind != Order.Kind.LOCKER_RENTAL:
        return RentalClock()
    if order.completed_at is not None:
        reopen_until = order.completed_at + settings.RENTAL_REOPEN
        return RentalClock(reopen_until=reopen_until, door=DoorPurpose.REOPEN.value if now <= reopen_until else "")
    running = order.status in (Order.Status.PAID, Order.Status.PARTIALLY_REFUNDED)
    if not running or code is None or order.rental_ends_at is None:
        return RentalClock()
    left = max(int((order.rental_ends_at - now).total_seconds()), 0)
    door = DoorPurpose.PICKUP.value if now <= code.valid_until else "overdue"
    return RentalClock(time_left_seconds=left, pickup_until=code.valid_until, door=door)
