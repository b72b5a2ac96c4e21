"""The rental's life through the API: time left, the pickup that completes the rental, open again,
and the overtime to pay (402) past the pickup code's validity (the wallet pays: ``now`` is the test clock)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.audit import Actor
from core.tests.api import assert_error_shape
from lockers.models import Compartment
from payments.services import payment_pay_with_wallet
from payments.tests.flows import rental
from wallets.services import wallet_credit

pytestmark = pytest.mark.django_db


def wallet_paid_rental(user_api, *, paid_at=None, hours: int = 2) -> dict:
    wallet_credit(user_id=user_api.user.pk, amount_fen=10_000, type="topup", reference="TU1", actor=Actor.system("t"))
    order = rental(user_api, hours=hours)
    payment_pay_with_wallet(user=user_api.user, order_no=order["order_no"], now=paid_at or timezone.now())
    return order


def detail(user_api, order_no: str) -> dict:
    response = user_api.get(f"/api/v1/orders/{order_no}/")
    assert response.status_code == 200
    return response.json()


def open_door(user_api, order_no: str):
    return user_api.post(f"/api/v1/orders/{order_no}/open-door/", {}, format="json")


def test_a_paid_rental_shows_its_time_left_then_ends_at_pickup(user_api, settings):
    order = wallet_paid_rental(user_api, hours=2)

    running = detail(user_api, order["order_no"])
    assert running["status"] == "paid" and running["door"] == "pickup" and running["completed_at"] is None
    assert 7_190 <= running["time_left_seconds"] <= 7_200
    pickup_until = parse_datetime(running["pickup_until"])
    assert pickup_until == parse_datetime(running["rental_ends_at"]) + settings.PICKUP_CODE_GRACE

    opened = open_door(user_api, order["order_no"])

    assert opened.status_code == 202, opened.content
    body = opened.json()
    assert (body["status"], body["purpose"], body["order"]["status"]) == ("door_open_sent", "pickup", "completed")
    done = body["order"]
    assert done["pickup_code"] is None and done["time_left_seconds"] is None and done["door"] == "reopen"
    assert parse_datetime(done["reopen_until"]) == parse_datetime(done["completed_at"]) + settings.RENTAL_REOPEN
    assert Compartment.objects.get(pk=order["compartment"]["id"]).status == "free"
    assert detail(user_api, order["order_no"]) == done

    again = open_door(user_api, order["order_no"])
    assert again.status_code == 202 and again.json()["purpose"] == "reopen"


def test_after_the_open_again_window_the_door_stays_shut(user_api, settings):
    settings.RENTAL_REOPEN = timedelta(0)
    order = wallet_paid_rental(user_api)
    assert open_door(user_api, order["order_no"]).status_code == 202
    assert detail(user_api, order["order_no"])["door"] is None
    assert_error_shape(open_door(user_api, order["order_no"]), 409, "rental_completed")


def test_past_the_pickup_code_validity_opening_answers_402_with_the_overtime_to_pay(user_api, settings):
    paid_at = timezone.now() - timedelta(hours=2) - settings.PICKUP_CODE_GRACE - timedelta(minutes=1)
    order = wallet_paid_rental(user_api, paid_at=paid_at, hours=2)
    shown = detail(user_api, order["order_no"])
    assert (shown["time_left_seconds"], shown["door"]) == (0, "overdue")

    response = open_door(user_api, order["order_no"])

    assert_error_shape(response, 402, "overtime_due")
    details = response.json()["error"]["details"]
    assert set(details) == {
        "order_no",
        "amount_fen",
        "billed_hours",
        "overdue_seconds",
        "rental_ends_at",
        "covers_until",
        "expires_at",
    }
    # 1 h 1 min past the paid end: 2 started hours of the plan's 500 fen/h
    assert (details["billed_hours"], details["amount_fen"]) == (2, 1_000)
    assert details["overdue_seconds"] >= settings.PICKUP_CODE_GRACE.total_seconds() + 60
    assert "¥10.00" in response.json()["error"]["message"]
    assert open_door(user_api, order["order_no"]).json()["error"]["details"]["order_no"] == details["order_no"]
    overtime = detail(user_api, details["order_no"])
    assert (overtime["kind"], overtime["status"], overtime["rental"]) == (
        "locker_overtime",
        "pending_payment",
        order["order_no"],
    )
    assert overtime["amount_fen"] == 1_000 and overtime["pricing"]["billed_hours"] == 2
    assert detail(user_api, order["order_no"])["status"] == "paid"
    assert Compartment.objects.get(pk=order["compartment"]["id"]).status == "occupied"

    paid = user_api.post("/api/v1/payments/", {"order_no": details["order_no"], "channel": "wallet"}, format="json")

    assert paid.status_code == 201, paid.content
    assert detail(user_api, details["order_no"])["status"] == "paid"
    done = detail(user_api, order["order_no"])
    assert (done["status"], done["door"]) == ("completed", "reopen")
    assert Compartment.objects.get(pk=order["compartment"]["id"]).status == "free"
    assert user_api.get("/api/v1/wallet/").json()["balance_fen"] == 10_000 - 1_000 - 1_000


def test_renting_the_same_compartment_again_after_the_pickup(user_api):
    order = wallet_paid_rental(user_api)
    open_door(user_api, order["order_no"])
    response = user_api.post(
        "/api/v1/orders/", {"compartment_id": order["compartment"]["id"], "hours": 1}, format="json"
    )
    assert response.status_code == 201, response.content
    listed = user_api.get("/api/v1/orders/").json()["results"]
    assert {o["status"] for o in listed} == {"completed", "pending_payment"}
    assert all(o["door"] is None for o in listed if o["status"] == "pending_payment")
