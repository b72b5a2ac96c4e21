"""Whether the customer used a rental (then only staff refund it): one rule for every channel and every
door driver, read from what each door-open command was for. The opening right after payment is not a use."""

import pytest

from core.audit import Actor
from core.tests.factories import StaffFactory
from lockers.models import LockerEvent
from lockers.services import door_open
from orders.models import Order
from payments.tests.flows import paid_order
from refunds.models import Refund
from refunds.services import refund_request
from refunds.tests.test_workflow import staff_with
from wallets.services import wallet_credit

pytestmark = pytest.mark.django_db
CHANNELS = ["wallet", "wechat_native", "alipay_page"]


@pytest.fixture
def paid_with(request, user_api, django_capture_on_commit_callbacks, celery_eager):
    """A rental paid through a channel, with its after-commit work run as the worker runs it: the door opens
    for delivery through the driver, 0.2 s after paying."""

    def pay(channel: str) -> dict:
        sandbox = None if channel == "wallet" else request.getfixturevalue("gateways")
        wallet_credit(
            user_id=user_api.user.pk, amount_fen=10_000, type="topup", reference="TU1", actor=Actor.system("t")
        )
        with django_capture_on_commit_callbacks(execute=True):
            order, _ = paid_order(user_api, sandbox, channel=channel)
        sent = LockerEvent.objects.filter(reference=order["order_no"], action="door_open_sent")
        assert [e.data["purpose"] for e in sent] == ["delivery"]  # the driver really opened it
        return order

    return pay


def ask_refund(user_api, order_no: str):
    return user_api.post("/api/v1/refunds/", {"order_no": order_no, "reason": "changed my mind"}, format="json")


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_refund_right_after_paying_is_self_service_on_every_channel(user_api, paid_with, channel):
    order = paid_with(channel)
    # the wallet's payment is the user's own act: the delivery opening is recorded with the user as actor
    delivery = LockerEvent.objects.get(reference=order["order_no"], action="door_open_command")
    assert delivery.data["purpose"] == "delivery"

    response = ask_refund(user_api, order["order_no"])

    assert response.status_code == 201, response.content  # was 403 refund_needs_staff for the wallet
    assert response.json()["status"] == "requested"


@pytest.mark.parametrize("channel", CHANNELS)
def test_after_the_pickup_only_staff_refund(user_api, paid_with, channel):
    order = paid_with(channel)
    assert user_api.post(f"/api/v1/orders/{order['order_no']}/open-door/", {}, format="json").status_code == 202

    response = ask_refund(user_api, order["order_no"])

    assert response.status_code == 403 and response.json()["error"]["code"] == "refund_needs_staff"
    assert Order.objects.get(order_no=order["order_no"]).status == "completed"
    support = staff_with("refunds.request_refund")
    refund = refund_request(
        order_no=order["order_no"], amount_fen=None, reason="complaint", requested_by=support, source="staff"
    )
    assert refund.status == Refund.Status.REQUESTED


def test_a_staff_opening_is_not_the_customers_use(user_api, paid_with):
    order = paid_with("wallet")
    compartment_id = order["compartment"]["id"]
    door_open(
        compartment_id=compartment_id,
        reference=order["order_no"],
        actor=Actor.user(StaffFactory()),
        purpose="staff",
        reason="customer locked out",
    )
    assert ask_refund(user_api, order["order_no"]).status_code == 201
