"""Races on real PostgreSQL with real threads: exactly one winner."""

import pytest

from conftest import run_concurrently
from core.errors import Conflict
from core.tests.factories import UserFactory
from lockers.models import Compartment
from lockers.tests.factories import CompartmentFactory, PricePlanFactory
from orders.models import Order
from orders.services import order_create_rental

pytestmark = pytest.mark.django_db(transaction=True)


def test_many_users_racing_for_one_compartment_one_wins():
    PricePlanFactory(size="M")
    compartment = CompartmentFactory(size="M")
    users = [UserFactory() for _ in range(8)]

    results = run_concurrently(
        lambda u: order_create_rental(user=u, compartment_id=compartment.pk, hours=1),
        args_list=[(u,) for u in users],
    )

    winners = [r for r in results if isinstance(r, Order)]
    losers = [r for r in results if isinstance(r, Conflict)]
    assert len(winners) == 1 and len(losers) == 7, results
    assert {e.code for e in losers} == {"compartment_unavailable"}
    assert Order.objects.count() == 1
    compartment.refresh_from_db()
    assert compartment.status == Compartment.Status.RESERVED and compartment.reference == winners[0].order_no


def test_loser_gets_a_clear_409_from_the_api():
    from rest_framework.test import APIClient

    from core.jwt_auth import token_for

    PricePlanFactory(size="M")
    compartment = CompartmentFactory(size="M")
    clients = []
    for _ in range(4):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(UserFactory())}")
        clients.append(client)

    responses = run_concurrently(
        lambda c: c.post("/api/v1/orders/", {"compartment_id": compartment.pk, "hours": 1}, format="json"),
        args_list=[(c,) for c in clients],
    )

    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 409, 409, 409]
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {"compartment_unavailable"}
