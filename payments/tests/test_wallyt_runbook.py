"""Seed 004 (the Wallyt mini-program runbook), step by step against our API paths.

Runbook path -> ours: POST /auth/wechat/login -> /api/v1/auth/wechat/login; POST
/payments/wechat/prepay {orderId, openid} -> POST /api/v1/payments/ {order_no, channel:
"wallyt_jsapi", openid}; POST /payments/wallyt/notify -> /api/v1/payments/notify/wallyt/;
GET /payments/status/:orderId -> GET /api/v1/orders/{order_no}/; POST /payments/refund
{orderId, refundAmount?, reason} -> POST /api/v1/refunds/ {order_no, amount_fen?, reason}.
"""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from core.audit import Actor
from lockers.tests.factories import CompartmentFactory, PricePlanFactory
from payments.gateways.wallyt import md5_verify, xml_dumps, xml_loads
from payments.models import Payment
from payments.tests.flows import first_notification_body
from refunds.models import Refund
from refunds.services import refund_sync

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_runbook_as_written(gateways, settings, celery_eager):
    settings.REFUND_AUTO_APPROVE_MAX_FEN = 10**9  # the runbook's refunds are not reviewed by finance
    PricePlanFactory(size="L", price_per_hour_fen=5_000, min_hours=1, cap_fen=50_000)
    compartment = CompartmentFactory(size="L")

    # 0. token and openid from the mini-program login
    login = APIClient().post("/api/v1/auth/wechat/login", {"code": "wx_auth_code_from_miniprogram"}, format="json")
    assert login.status_code == 200
    token, openid = login.json()["token"], login.json()["openid"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    # 1. an order (the runbook's orderId) in PENDING
    order = api.post("/api/v1/orders/", {"compartment_id": compartment.pk, "hours": 2}, format="json").json()
    assert order["status"] == "pending_payment" and order["amount_fen"] == 10_000

    # 2. prepay: payParams with every field wx.requestPayment needs
    prepay = api.post(
        "/api/v1/payments/", {"order_no": order["order_no"], "channel": "wallyt_jsapi", "openid": openid}, format="json"
    )
    assert prepay.status_code == 201, prepay.content
    params = prepay.json()["pay_params"]
    assert {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"} <= set(params)

    # 3. the payer pays in the mini-program (the sandbox's cashier), and
    # 4. the notify reaches us as the runbook's curl sends it: XML, signed, answered "success"
    payment_no = prepay.json()["payment_no"]
    gateways.control(f"wallyt/transactions/{payment_no}/pay", json={})
    notify = xml_loads(first_notification_body(gateways, payment_no).encode())
    assert notify["total_fee"] == "10000" and md5_verify(notify, key=gateways.read("wallyt/secret_key").strip())
    answer = Client().post("/api/v1/payments/notify/wallyt/", data=xml_dumps(notify), content_type="application/xml")
    assert answer.content.strip() == b"success"

    # 5. status: paid, with paid time and the gateway's transaction id
    status = api.get(f"/api/v1/orders/{order['order_no']}/").json()
    assert status["status"] == "paid" and status["paid_at"]
    assert Payment.objects.get(payment_no=payment_no).gateway_trade_no == notify["transaction_id"]

    # 7. partial refund, then 6. the rest (full): each accepted and sent to Wallyt
    partial = api.post(
        "/api/v1/refunds/", {"order_no": order["order_no"], "amount_fen": 5_000, "reason": "部分退款"}, format="json"
    )
    assert partial.status_code == 201 and partial.json()["amount_fen"] == 5_000
    rest = api.post("/api/v1/refunds/", {"order_no": order["order_no"], "reason": "用户申请退款"}, format="json")
    assert rest.status_code == 201 and rest.json()["amount_fen"] == 5_000
    for refund in Refund.objects.all():
        assert refund.status == "processing"
        gateways.control(f"wallyt/refunds/{refund.refund_no}/settle", json={"status": "SUCCESS"})
        refund_sync(refund_id=refund.pk, actor=Actor.system("runbook"))
    assert api.get(f"/api/v1/orders/{order['order_no']}/").json()["status"] == "refunded"

    # the runbook's error list
    assert APIClient().get(f"/api/v1/orders/{order['order_no']}/").status_code == 401  # no token
    missing = api.post(
        "/api/v1/payments/", {"order_no": "NOPE", "channel": "wallyt_jsapi", "openid": openid}, format="json"
    )
    assert missing.status_code == 404
    # an order that cannot be paid any more: 409 here (the API's one code for "wrong state"; the
    # runbook says 400, the payments issue asks for 409, and one API cannot answer both)
    again = api.post(
        "/api/v1/payments/", {"order_no": order["order_no"], "channel": "wallyt_jsapi", "openid": openid}, format="json"
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "order_not_payable"
    over = api.post("/api/v1/refunds/", {"order_no": order["order_no"], "amount_fen": 1, "reason": "x"}, format="json")
    assert over.status_code in (400, 409)
    settings.SANDBOX_ENABLED = False
    from payments.gateways.registry import reset_gateways

    reset_gateways()
    second = api.post(
        "/api/v1/orders/", {"compartment_id": CompartmentFactory(size="L").pk, "hours": 1}, format="json"
    ).json()
    unconfigured = api.post(
        "/api/v1/payments/",
        {"order_no": second["order_no"], "channel": "wallyt_jsapi", "openid": openid},
        format="json",
    )
    reset_gateways()
    assert unconfigured.status_code == 503 and unconfigured.json()["error"]["code"] == "channel_not_configured"
