"""WeChat Pay v3 end to end: our API -> real wechatpayv3 SDK -> sandbox over HTTP -> notification."""

import pytest

from lockers.models import Compartment, LockerEvent, PickupCode
from lockers.tests.factories import CompartmentFactory, PricePlanFactory
from orders.models import Order
from payments.models import GatewayNotification, Payment, PaymentEvent
from wallets.models import Wallet

pytestmark = pytest.mark.django_db(transaction=True)


def _rental(user_api, size="M"):
    PricePlanFactory(size=size)
    compartment = CompartmentFactory(size=size)
    response = user_api.post("/api/v1/orders/", {"compartment_id": compartment.pk, "hours": 2}, format="json")
    assert response.status_code == 201
    return response.json()


def _pay(user_api, order_no, channel, **extra):
    return user_api.post("/api/v1/payments/", {"order_no": order_no, "channel": channel, **extra}, format="json")


def _wait_paid(sandbox, payment_no):
    return sandbox.wait_for(lambda: Payment.objects.get(payment_no=payment_no).status == "succeeded", timeout=15)


@pytest.mark.parametrize(
    ("channel", "extra", "field"),
    [
        ("wechat_native", {}, "code_url"),
        ("wechat_h5", {}, "h5_url"),
        ("wechat_jsapi", {"openid": "o-user-1"}, "pay_params"),
    ],
)
def test_every_product_pays_end_to_end(user_api, notify_to, celery_eager, channel, extra, field):
    # given a pending rental
    order = _rental(user_api)

    # when the user starts paying
    started = _pay(user_api, order["order_no"], channel, **extra)
    assert started.status_code == 201, started.content
    payment = started.json()
    assert payment["status"] == "pending" and payment[field]
    if channel == "wechat_jsapi":
        params = payment["pay_params"]
        assert set(params) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
        assert params["signType"] == "RSA" and params["package"].startswith("prepay_id=")
    if channel == "wechat_native":
        assert payment["code_url"].startswith("weixin://wxpay/bizpayurl")
        qr = user_api.get(payment["qr_url"])
        assert qr.status_code == 200 and qr["Content-Type"] == "image/svg+xml" and b"<svg" in qr.content

    # and pays in the sandbox cashier, which notifies us
    notify_to.control(f"wechat/transactions/{payment['payment_no']}/pay", json={})
    _wait_paid(notify_to, payment["payment_no"])

    # then the order is paid, the compartment occupied, a pickup code issued and the door opened
    db_order = Order.objects.get(order_no=order["order_no"])
    assert db_order.status == "paid" and db_order.paid_at
    assert Compartment.objects.get(pk=db_order.compartment_id).status == "occupied"
    assert PickupCode.objects.filter(reference=db_order.order_no, status="active").exists()
    assert notify_to.wait_for(
        lambda: LockerEvent.objects.filter(action="door_open_command", reference=db_order.order_no).exists()
    )
    detail = user_api.get(f"/api/v1/orders/{order['order_no']}/").json()
    assert detail["status"] == "paid" and len(detail["pickup_code"]) == 6
    inbox = GatewayNotification.objects.get(reference=payment["payment_no"])
    assert inbox.verified and inbox.processed_at and not inbox.error
    delivered = notify_to.wait_for(
        lambda: [d for d in notify_to.notifications(out_trade_no=payment["payment_no"]) if d["state"] == "delivered"]
    )
    assert delivered[0]["attempts"][-1]["status"] == 204


def test_topup_through_wechat_credits_the_wallet(user_api, notify_to):
    order = user_api.post("/api/v1/wallet/topups/", {"amount_fen": 8_800}, format="json").json()
    payment = _pay(user_api, order["order_no"], "wechat_native").json()
    notify_to.control(f"wechat/transactions/{payment['payment_no']}/pay", json={})
    _wait_paid(notify_to, payment["payment_no"])
    wallet = Wallet.objects.get(user=user_api.user)
    assert wallet.balance_fen == 8_800 and wallet.transactions.get().reference == order["order_no"]


def test_lost_notification_is_healed_by_sync(user_api, gateways):
    order = _rental(user_api)
    payment = _pay(user_api, order["order_no"], "wechat_native").json()
    gateways.fault("wechat.notify", "drop")
    gateways.control(f"wechat/transactions/{payment['payment_no']}/pay", json={})
    assert Payment.objects.get(payment_no=payment["payment_no"]).status == "pending"

    synced = user_api.post(f"/api/v1/payments/{payment['payment_no']}/sync/", {}, format="json")

    assert synced.status_code == 200 and synced.json()["status"] == "succeeded"
    assert Order.objects.get(order_no=order["order_no"]).status == "paid"


def test_close_an_unpaid_payment_then_pay_another_way(user_api, gateways):
    order = _rental(user_api)
    first = _pay(user_api, order["order_no"], "wechat_native").json()
    busy = _pay(user_api, order["order_no"], "wechat_h5")
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "payment_in_progress"

    closed = user_api.post(f"/api/v1/payments/{first['payment_no']}/close/", {}, format="json")

    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert gateways.control(f"wechat/transactions/{first['payment_no']}")["wire"]["trade_state"] == "CLOSED"
    assert _pay(user_api, order["order_no"], "wechat_h5").status_code == 201


def test_close_races_a_payment_the_payment_wins(user_api, gateways):
    # given a payment the user completed, whose notification has not arrived
    order = _rental(user_api)
    payment = _pay(user_api, order["order_no"], "wechat_native").json()
    gateways.fault("wechat.notify", "drop")
    gateways.control(f"wechat/transactions/{payment['payment_no']}/pay", json={})

    # when the user (or the expiry job) closes it
    response = user_api.post(f"/api/v1/payments/{payment['payment_no']}/close/", {}, format="json")

    # then the gateway says ORDERPAID and we apply the payment instead
    assert response.status_code == 409 and response.json()["error"]["code"] == "trade_already_paid"
    assert Payment.objects.get(payment_no=payment["payment_no"]).status == "succeeded"
    assert Order.objects.get(order_no=order["order_no"]).status == "paid"


def test_cancel_order_closes_its_open_payment_first(user_api, gateways):
    order = _rental(user_api)
    payment = _pay(user_api, order["order_no"], "wechat_native").json()
    response = user_api.post(f"/api/v1/orders/{order['order_no']}/cancel/", {}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert Payment.objects.get(payment_no=payment["payment_no"]).status == "closed"
    assert gateways.control(f"wechat/transactions/{payment['payment_no']}")["wire"]["trade_state"] == "CLOSED"


def test_same_product_twice_reuses_the_open_payment(user_api, gateways):
    order = _rental(user_api)
    first = _pay(user_api, order["order_no"], "wechat_native").json()
    again = _pay(user_api, order["order_no"], "wechat_native").json()
    assert first["payment_no"] == again["payment_no"] and first["code_url"] == again["code_url"]
    assert Payment.objects.count() == 1


def test_paying_an_order_that_is_not_pending_is_409(user_api, gateways):
    order = _rental(user_api)
    user_api.post(f"/api/v1/orders/{order['order_no']}/cancel/", {}, format="json")
    response = _pay(user_api, order["order_no"], "wechat_native")
    assert response.status_code == 409 and response.json()["error"]["code"] == "order_not_payable"
    assert not Payment.objects.exists()


def test_idempotency_key(user_api, gateways):
    order = _rental(user_api)
    body = {"order_no": order["order_no"], "channel": "wechat_native"}
    first = user_api.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = user_api.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    other = user_api.post(
        "/api/v1/payments/", {**body, "channel": "wechat_h5"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert len(gateways.control("wechat/transactions")["transactions"]) == 1


def test_gateway_outage_is_retryable_with_the_same_key(user_api, gateways):
    order = _rental(user_api)
    body = {"order_no": order["order_no"], "channel": "wechat_native"}
    gateways.fault("wechat.pay", "http_500")
    failed = user_api.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert failed.status_code == 502 and failed.json()["error"]["code"] == "gateway_unavailable"
    retried = user_api.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert retried.status_code == 201 and retried.json()["status"] == "pending"
    assert Payment.objects.count() == 1


def test_unconfigured_channel_is_503_and_writes_nothing(user_api, settings):
    from payments.gateways.registry import reset_gateways

    settings.SANDBOX_ENABLED = False
    reset_gateways()
    order = _rental(user_api)
    response = _pay(user_api, order["order_no"], "wechat_native")
    reset_gateways()
    assert response.status_code == 503 and response.json()["error"]["code"] == "channel_not_configured"
    assert not Payment.objects.exists() and not PaymentEvent.objects.exists()


def test_jsapi_without_openid_is_400(user_api, gateways):
    order = _rental(user_api)
    response = _pay(user_api, order["order_no"], "wechat_jsapi")
    assert response.status_code == 409 and "openid" in response.json()["error"]["details"]


def test_other_users_payment_is_404(user_api, api, gateways):
    from core.jwt_auth import token_for
    from core.tests.factories import UserFactory

    order = _rental(user_api)
    payment = _pay(user_api, order["order_no"], "wechat_native").json()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(UserFactory())}")
    for path in ("", "sync/", "close/"):
        method = api.get if not path else api.post
        assert method(f"/api/v1/payments/{payment['payment_no']}/{path}").status_code == 404
    assert api.get(f"/api/v1/payments/{payment['payment_no']}/qr.svg").status_code == 404
    assert _pay(api, order["order_no"], "wechat_native").status_code == 404
