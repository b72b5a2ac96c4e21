"""Reads of lockers that other apps ask about: pickup codes and what a door was opened for."""

from __future__ import annotations

from lockers.models import CUSTOMER_USE, DOOR_OPEN_COMMAND, LockerEvent, PickupCode


def pickup_codes_active(*, references: list[str]) -> dict[str, PickupCode]:
    """The active pickup code of each of these orders (by order number), in one query."""
    rows = PickupCode.objects.filter(reference__in=references, status=PickupCode.Status.ACTIVE)
    return {code.reference: code for code in rows}


def door_opened_by_customer(*, reference: str) -> bool:
    """Whether the customer opened the door of this order for their own use (pickup or open again).

    Read from the purpose recorded with each door-open command, never from who asked or which driver
    carried it out: the opening right after payment (``delivery``) and staff openings do not count.
    """
    return reference in doors_opened_by_customer(references=[reference])


def doors_opened_by_customer(*, references: list[str]) -> set[str]:
    """Of these order references, those whose door the customer opened for their own use (the rule of
    ``door_opened_by_customer``), in one query."""
    if not references:
        return set()
    commands = LockerEvent.objects.filter(reference__in=references, action=DOOR_OPEN_COMMAND)
    used = commands.filter(data__purpose__in=[str(p) for p in CUSTOMER_USE])
    return set(used.order_by().values_list("reference", flat=True).distinct())
