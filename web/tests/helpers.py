"""Shared steps of the page tests."""

from __future__ import annotations

from core.audit import Actor
from lockers.tests.factories import CabinetFactory, CompartmentFactory, PricePlanFactory
from orders.models import Order
from orders.services import order_create_rental
from wallets.models import WalletTransaction
from wallets.services import wallet_credit


def cabinet_with_compartments(sizes=("S", "M", "M")):
    cabinet = CabinetFactory(name="Central Station")
    for size in set(sizes):
        PricePlanFactory(size=size, price_per_hour_fen={"S": 300, "M": 500, "L": 800}[size])
    compartments = [CompartmentFactory(cabinet=cabinet, size=size, label=f"{size}{i}") for i, size in enumerate(sizes)]
    return cabinet, compartments


def rental_for(user, hours: int = 2) -> Order:
    _, compartments = cabinet_with_compartments(("M",))
    return order_create_rental(user=user, compartment_id=compartments[0].pk, hours=hours)


def fund(user, fen: int, reference: str = "test-funds") -> None:
    wallet_credit(
        user_id=user.pk,
        amount_fen=fen,
        type=WalletTransaction.Type.ADJUSTMENT,
        reference=reference,
        actor=Actor.system("test"),
    )


def result_url(order: Order) -> str:
    return f"/pay/result/?order={order.order_no}"


def move_rental_back(order_no: str, by) -> None:
    """The test clock of a paid rental seen by a live server (which reads the real clock): its paid time and
    its pickup code's validity move ``by`` (a timedelta) into the past, as if that much time had gone by."""
    from django.db.models import F

    from lockers.models import PickupCode

    Order.objects.filter(order_no=order_no).update(paid_at=F("paid_at") - by, rental_ends_at=F("rental_ends_at") - by)
    PickupCode.objects.filter(reference=order_no).update(valid_until=F("valid_until") - by)
