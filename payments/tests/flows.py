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


def paid_order(user_api, sandbox, channel="wechat_native", **extra) -> tuple[dict, str]:
    """A rental paid through ``channel`` in the sandbox (applied by a sync, no notification needed)."""
    from core.audit import Actor
    from payments.services import payment_sync

    order = rental(user_api)
    started = pay(user_api, order["order_no"], channel, **extra)
    assert started.status_code == 201, started.content
    payment_no = started.json()["payment_no"]
    if channel != "wallet":
        if channel.startswith("alipay"):
            import requests

            requests.get(started.json()["pay_url"], timeout=10)  # the payer opens the cashier
        gateway = channel.split("_")[0]
        sandbox.control(f"{gateway}/transactions/{payment_no}/pay", json={})
        payment_sync(payment_no=payment_no, actor=Actor.system("test"))
    assert Payment.objects.get(payment_no=payment_no).status == "succeeded"
    return order, payment_no
