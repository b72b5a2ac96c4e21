"""Wallyt (SwiftPass-style XML + MD5) end to end, and the notify inbox checks."""

import pytest
from django.test import Client

from conftest import run_concurrently
from orders.models import Order
from payments.gateways.wallyt import md5_sign, xml_dumps, xml_loads
from payments.models import GatewayNotification, Payment, PaymentEvent
from payments.tests.flows import first_notification_body, pay, rental, wait_status

pytestmark = pytest.mark.django_db(transaction=True)
NOTIFY = "/api/v1/payments/notify/wallyt/"


def _post(body: bytes):
    return Client().post(NOTIFY, data=body, content_type="text/xml")


def test_mini_program_pay_end_to_end(user_api, notify_to):
    order = rental(user_api)
    started = pay(user_api, order["order_no"], "wallyt_jsapi", openid="o-mini-1")
    assert started.status_code == 201, started.content
    params = started.json()["pay_params"]
    assert {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"} <= set(params)
    assert params["appId"] == notify_to.credentials["wechat"]["mini_appid"]

    notify_to.control(f"wallyt/transactions/{started.json()['payment_no']}/pay", json={})
    wait_status(notify_to, started.json()["payment_no"])

    assert user_api.get(f"/api/v1/orders/{order['order_no']}/").json()["status"] == "paid"
    deliveries = notify_to.wait_for(
        lambda: [
            d for d in notify_to.notifications(out_trade_no=started.json()["payment_no"]) if d["state"] == "delivered"
        ]
    )
    assert deliveries[0]["attempts"][-1]["response"].strip() == "success"


def _signed_notify(gateways, user_api, **changes):
    order = rental(user_api)
    payment_no = pay(user_api, order["order_no"], "wallyt_jsapi", openid="o-mini-1").json()["payment_no"]
    gateways.control(f"wallyt/transactions/{payment_no}/pay", json={})
    fields = xml_loads(first_notification_body(gateways, payment_no).encode())
    fields.update(changes)
    fields["sign"] = md5_sign(fields, key=gateways.read("wallyt/secret_key").strip())
    return Payment.objects.get(payment_no=payment_no), fields


def test_a_valid_notify_applies_once_even_when_concurrent(user_api, gateways):
    payment, fields = _signed_notify(gateways, user_api)
    body = xml_dumps(fields)
    responses = run_concurrently(lambda: _post(body), args_list=[()] * 6)
    assert [r.content.strip() for r in responses] == [b"success"] * 6
    assert PaymentEvent.objects.filter(payment=payment, action="paid").count() == 1
    assert Order.objects.get(pk=payment.order_id).status == "paid"


@pytest.mark.parametrize(
    "changes",
    [
        {"mch_id": "7559999999"},
        {"total_fee": "1"},
        {"out_trade_no": "PYNOSUCHPAYMENT0001"},
        {"status": "1"},
        {"result_code": "1"},
    ],
    ids=["wrong_mch_id", "wrong_amount", "unknown_out_trade_no", "status_not_0", "result_not_0"],
)
def test_validly_signed_wrong_claims_change_nothing(user_api, gateways, changes):
    payment, fields = _signed_notify(gateways, user_api, **changes)
    assert _post(xml_dumps(fields)).content.strip() == b"fail"
    payment.refresh_from_db()
    assert payment.status == "pending" and payment.order.status == "pending_payment"


def test_bad_signature_changes_nothing(user_api, gateways):
    payment, fields = _signed_notify(gateways, user_api)
    fields["sign"] = "0" * 32
    assert _post(xml_dumps(fields)).content.strip() == b"fail"
    payment.refresh_from_db()
    assert payment.status == "pending"
    assert GatewayNotification.objects.latest("id").error.startswith("signature_invalid")


HOSTILE = {
    "billion_laughs": b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;">]><xml><out_trade_no>&c;</out_trade_no></xml>',
    "external_entity": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b"<xml><out_trade_no>&e;</out_trade_no></xml>",
    "malformed": b"<xml><out_trade_no>PY1</out_trade_no",
    "nested": b"<xml><a><b>1</b></a></xml>",
    "not_xml": b"status=0&result_code=0",
}


def test_an_oversized_body_is_refused_before_anything_is_stored(gateways):
    before = GatewayNotification.objects.count()

    response = _post(b"<xml><attach>" + b"x" * 100_000 + b"</attach></xml>")

    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"
    assert GatewayNotification.objects.count() == before


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_xml_is_refused_and_kept_as_evidence(gateways, case):
    response = _post(HOSTILE[case])
    assert response.content.strip() == b"fail"
    row = GatewayNotification.objects.latest("id")
    assert not row.verified and row.error and bytes(row.body) == HOSTILE[case]


def test_unconfigured_is_503(user_api, settings):
    from payments.gateways.registry import reset_gateways

    settings.SANDBOX_ENABLED = False
    reset_gateways()
    order = rental(user_api)
    response = pay(user_api, order["order_no"], "wallyt_jsapi", openid="o-1")
    reset_gateways()
    assert response.status_code == 503 and response.json()["error"]["code"] == "channel_not_configured"
