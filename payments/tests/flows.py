"""Shared steps of the end-to-end payment tests."""

from lockers.tests.factories import CompartmentFactory, PricePlanFactory
from payments.models import Payment


def rental(user_api, size="M", hours=2) -> dict:
    PricePlanFactory(size=size)
    compartment = CompartmentFactory(size=size)
    response = user_api.post("/api/v1/orders/", {"compartment_id": compartment.pk, "hours": hours}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def pay(user_api, order_no, channel, **extra):
    return user_api.post("/api/v1/payments/", {"order_no": order_no, "channel": channel, **extra}, format="json")


def wait_status(sandbox, payment_no, status="succeeded", timeout=15):
    return sandbox.wait_for(lambda: Payment.objects.get(payment_no=payment_no).status == status, timeout=timeout)


def first_notification_body(sandbox, payment_no: str) -> str:
    """The body the sandbox tried to deliver (to nowhere): signed exactly as the gateway signs."""

    def attempted():
        deliveries = sandbox.notifications(out_trade_no=payment_no)
        return deliveries and deliveries[0]["attempts"] and deliveries[0]["body"]

    return sandbox.wait_for(attempted, timeout=10)
