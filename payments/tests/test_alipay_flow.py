"""Alipay page/WAP end to end through python-alipay-sdk and the sandbox; the notify inbox checks."""

from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import requests
from django.test import Client

from conftest import run_concurrently
from orders.models import Order
from payments.models import GatewayNotification, Payment, PaymentEvent
from payments.tests.flows import first_notification_body, pay, rental, wait_status

pytestmark = pytest.mark.django_db(transaction=True)
NOTIFY = "/api/v1/payments/notify/alipay/"


@pytest.mark.parametrize("channel", ["alipay_page", "alipay_wap"])
def test_pay_in_the_cashier_notify_and_return(user_api, notify_to, live_server, channel):
    order = rental(user_api)
    started = pay(user_api, order["order_no"], channel)
    assert started.status_code == 201, started.content
    payment = started.json()
    assert payment["pay_url"].startswith(notify_to.alipay_gateway + "?")

    # the payer opens the pay_url: the sandbox shows its cashier
    page = requests.get(payment["pay_url"], timeout=10)
    assert page.status_code == 200 and payment["payment_no"] in page.text
    # and presses Pay: async notify to us, browser redirected to our return_url
    pressed = requests.post(
        f"{notify_to.base_url}/cashier/alipay/{payment['payment_no']}/pay", timeout=10, allow_redirects=False
    )
    assert pressed.status_code in (302, 303)
    wait_status(notify_to, payment["payment_no"])
    back = requests.get(pressed.headers["Location"], allow_redirects=False, timeout=10)

    assert back.status_code == 302
    landing = parse_qs(urlparse(back.headers["Location"]).query)
    assert landing["outTradeNo"] == [payment["payment_no"]] and landing["status"] == ["succeeded"]
    assert Order.objects.get(order_no=order["order_no"]).status == "paid"
    delivered = notify_to.wait_for(
        lambda: [d for d in notify_to.notifications(out_trade_no=payment["payment_no"]) if d["state"] == "delivered"]
    )
    assert delivered[0]["attempts"][-1]["response"] == "success"


def test_return_before_the_notify_asks_the_gateway(user_api, gateways, live_server, settings):
    settings.ALIPAY_RETURN_URL = f"{live_server.url}/api/v1/payments/return/alipay/"
    from payments.gateways.registry import reset_gateways

    reset_gateways()
    order = rental(user_api)
    payment = pay(user_api, order["order_no"], "alipay_page").json()
    requests.get(payment["pay_url"], timeout=10)
    gateways.fault("alipay.notify", "drop")
    pressed = requests.post(
        f"{gateways.base_url}/cashier/alipay/{payment['payment_no']}/pay", timeout=10, allow_redirects=False
    )
    back = requests.get(pressed.headers["Location"], allow_redirects=False, timeout=10)
    assert parse_qs(urlparse(back.headers["Location"]).query)["status"] == ["succeeded"]
    assert Payment.objects.get(payment_no=payment["payment_no"]).status == "succeeded"


def test_forged_return_is_refused(user_api, gateways):
    params = {"out_trade_no": "PYFORGED", "sign": "AAAA", "sign_type": "RSA2", "app_id": "x"}
    response = Client().get("/api/v1/payments/return/alipay/?" + urlencode(params))
    assert response.status_code in (400, 401)
    assert response.json()["error"]["code"] in ("signature_invalid", "notification_invalid")


def _notify_form(gateways, payment, **changes):
    """A notify signed exactly as the sandbox signs it (fetched from its delivery log)."""
    gateways.control(f"alipay/transactions/{payment.payment_no}/pay", json={})
    body = first_notification_body(gateways, payment.payment_no)
    form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
    assert form["sign"] and form["out_trade_no"] == payment.payment_no
    form.update(changes)
    return form


def _started(user_api, gateways):
    order = rental(user_api)
    payment = pay(user_api, order["order_no"], "alipay_page").json()
    requests.get(payment["pay_url"], timeout=10)
    return Payment.objects.get(payment_no=payment["payment_no"])


CASES = {
    "tampered_amount": {"total_amount": "0.01"},
    "tampered_status": {"trade_status": "TRADE_FINISHED", "total_amount": "0.02"},
    "bad_signature": {"sign": "QUJD" * 86 + "QQ=="},
    "sign_type_rsa": {"sign_type": "RSA"},
    "no_signature": {"sign": ""},
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_failed_notify_check_changes_nothing(user_api, gateways, case):
    payment = _started(user_api, gateways)
    form = _notify_form(gateways, payment, **CASES[case])
    response = Client().post(NOTIFY, data=urlencode(form), content_type="application/x-www-form-urlencoded")
    assert response.content == b"fail"
    payment.refresh_from_db()
    assert payment.status == "pending" and payment.order.status == "pending_payment"
    assert GatewayNotification.objects.latest("id").error


def test_the_sandbox_notify_verifies_and_applies_once_even_when_concurrent(user_api, gateways):
    payment = _started(user_api, gateways)
    form = urlencode(_notify_form(gateways, payment))

    responses = run_concurrently(
        lambda: Client().post(NOTIFY, data=form, content_type="application/x-www-form-urlencoded"),
        args_list=[()] * 6,
    )

    assert [r.content for r in responses] == [b"success"] * 6
    assert PaymentEvent.objects.filter(payment=payment, action="paid").count() == 1
    assert Order.objects.get(pk=payment.order_id).status == "paid"


def _resigned(gateways, form, **changes):
    """Change fields and sign again with the (sandbox's) Alipay key: a valid signature over a bad claim."""
    from alipay import AliPay

    signer = AliPay(
        appid=form["app_id"],
        app_private_key_string=gateways.read("alipay/alipay_private_key.pem"),
        alipay_public_key_string=gateways.read("alipay/alipay_public_key.pem"),
    )
    data = {k: v for k, v in form.items() if k not in ("sign", "sign_type")}
    data.update(changes, notify_id=f"resigned-{len(changes)}-{sorted(changes)}")
    unsigned = "&".join(f"{k}={data[k]}" for k in sorted(data))
    return {**data, "sign": signer._sign(unsigned), "sign_type": "RSA2"}


SIGNED_CASES = {
    "wrong_app_id": {"app_id": "2021000000009999"},
    "wrong_amount": {"total_amount": "0.01"},
    "unknown_out_trade_no": {"out_trade_no": "PYNOSUCHPAYMENT0001"},
}


@pytest.mark.parametrize("case", list(SIGNED_CASES))
def test_validly_signed_but_wrong_claims_change_nothing(user_api, gateways, case):
    payment = _started(user_api, gateways)
    form = _resigned(gateways, _notify_form(gateways, payment), **SIGNED_CASES[case])
    response = Client().post(NOTIFY, data=urlencode(form), content_type="application/x-www-form-urlencoded")
    assert response.content == b"fail"
    row = GatewayNotification.objects.latest("id")
    assert row.verified or case == "wrong_app_id"  # the signature itself was good
    payment.refresh_from_db()
    assert payment.status == "pending" and payment.order.status == "pending_payment"


def test_resigning_helper_makes_a_valid_notify(user_api, gateways):
    """Guards the test above: an unchanged claim re-signed the same way is accepted."""
    payment = _started(user_api, gateways)
    form = _resigned(gateways, _notify_form(gateways, payment))
    response = Client().post(NOTIFY, data=urlencode(form), content_type="application/x-www-form-urlencoded")
    assert response.content == b"success"
    payment.refresh_from_db()
    assert payment.status == "succeeded"


def test_trade_closed_notify_closes_an_open_payment(user_api, gateways):
    payment = _started(user_api, gateways)
    form = _resigned(gateways, _notify_form(gateways, payment), trade_status="TRADE_CLOSED")
    response = Client().post(NOTIFY, data=urlencode(form), content_type="application/x-www-form-urlencoded")
    assert response.content == b"success"
    payment.refresh_from_db()
    assert payment.status == "closed"
