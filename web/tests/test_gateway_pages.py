"""Checkout, waiting and result pages with every gateway channel (the sandbox, over HTTP)."""

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.utils import timezone

from lockers.models import PickupCode
from orders.models import Order
from payments.models import Payment, WeChatIdentity
from web.tests.helpers import rental_for, result_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(client, user):
    client.force_login(user)
    client.user = user
    return client


def _checkout(web, order, channel):
    return web.post(f"/orders/{order.order_no}/checkout/", {"channel": channel})


def test_wechat_native_qr_wait_sync_and_result(web, gateways, settings):
    order = rental_for(web.user)
    started = _checkout(web, order, "wechat_native")
    assert started.status_code == 302 and started["Location"] == f"/orders/{order.order_no}/wait/"
    payment = Payment.objects.get()

    wait = web.get(started["Location"]).content.decode()
    assert "<svg" in wait and "<?xml" not in wait
    cashier = f"{settings.SANDBOX_BASE_URL}/cashier/wechat/{payment.payment_no}?redirect="
    assert cashier in wait and 'data-sync-after="5"' in wait
    status = web.get(f"/orders/{order.order_no}/status/").json()
    assert status["done"] is False and status["payment_status"] == "pending"

    # the payer pays; the notification is lost (it goes nowhere in this test)
    gateways.control(f"wechat/transactions/{payment.payment_no}/pay", json={})
    assert web.get(f"/orders/{order.order_no}/status/").json()["done"] is False
    synced = web.post(f"/orders/{order.order_no}/sync/", HTTP_ACCEPT="application/json").json()

    assert synced["done"] is True and synced["order_status"] == "paid" and synced["result_url"] == result_url(order)
    page = web.get(result_url(order)).content.decode()
    assert "Payment complete" in page and PickupCode.objects.get(reference=order.order_no).code in page
    assert web.get(f"/orders/{order.order_no}/wait/")["Location"] == result_url(order)


def test_sync_without_javascript_redirects_back(web, gateways):
    order = rental_for(web.user)
    _checkout(web, order, "wechat_native")
    response = web.post(f"/orders/{order.order_no}/sync/")
    assert response.status_code == 302 and response["Location"] == f"/orders/{order.order_no}/wait/"


@pytest.mark.parametrize("channel", ["alipay_page", "alipay_wap"])
def test_alipay_redirects_to_the_cashier(web, gateways, channel):
    order = rental_for(web.user)
    started = _checkout(web, order, channel)
    assert started.status_code == 302 and started["Location"].startswith(gateways.alipay_gateway + "?")
    wait = web.get(f"/orders/{order.order_no}/wait/").content.decode()
    assert "Back to the Alipay cashier" in wait


def test_the_return_status_is_not_trusted(web, gateways):
    order = rental_for(web.user)
    _checkout(web, order, "alipay_page")
    payment = Payment.objects.get()
    landing = web.get(f"/pay/result/?outTradeNo={payment.payment_no}&orderNo={order.order_no}&status=succeeded")
    assert landing.status_code == 302 and landing["Location"] == f"/orders/{order.order_no}/wait/"
    by_payment = web.get(f"/pay/result/?outTradeNo={payment.payment_no}")
    assert by_payment["Location"] == f"/orders/{order.order_no}/wait/"


def test_wechat_h5_redirects_with_a_way_back(web, gateways):
    order = rental_for(web.user)
    started = _checkout(web, order, "wechat_h5")
    location = urlparse(started["Location"])
    assert f"{location.scheme}://{location.netloc}" == gateways.base_url
    back = parse_qs(location.query)["redirect_url"][0]
    assert back == f"http://testserver/orders/{order.order_no}/wait/"


def test_wallyt_shows_the_mini_program_pay_params(web, gateways):
    WeChatIdentity.objects.create(user=web.user, openid="o-web-user")
    order = rental_for(web.user)
    assert _checkout(web, order, "wallyt_jsapi")["Location"] == f"/orders/{order.order_no}/wait/"
    page = web.get(f"/orders/{order.order_no}/wait/").content.decode()
    assert "pay_params" in page and "paySign" in page and "/cashier/wallyt/" in page


def test_wallyt_is_not_offered_without_a_wechat_login_and_the_page_says_why(web, gateways):
    order = rental_for(web.user)  # a password sign-in: no WeChat identity, so no openid for Wallyt
    page = web.get(f"/orders/{order.order_no}/checkout/").content.decode()
    assert 'value="wallyt_jsapi"' not in page and 'value="wechat_native"' in page
    assert 'data-channel="wallyt_jsapi"' in page and "needs a WeChat sign-in" in page
    # sent anyway (an old page, a crafted form): refused with the same reason, nothing started
    response = _checkout(web, order, "wallyt_jsapi")
    assert response.status_code == 400 and b"needs a WeChat sign-in" in response.content
    assert not Payment.objects.filter(order=order).exists()


def test_wallyt_is_offered_to_a_wechat_user(web, gateways):
    WeChatIdentity.objects.create(user=web.user, openid="o-web-user")
    order = rental_for(web.user)
    page = web.get(f"/orders/{order.order_no}/checkout/").content.decode()
    assert 'value="wallyt_jsapi"' in page and 'id="not-offered"' not in page


def test_a_failed_payment_offers_to_try_again(web, gateways):
    order = rental_for(web.user)
    _checkout(web, order, "wechat_native")
    payment = Payment.objects.get()
    gateways.control(f"wechat/transactions/{payment.payment_no}/fail", json={})
    synced = web.post(f"/orders/{order.order_no}/sync/", HTTP_ACCEPT="application/json").json()
    assert synced["done"] is True and synced["payment_status"] == "failed"
    page = web.get(result_url(order)).content.decode()
    assert "The payment did not go through" in page and f"/orders/{order.order_no}/checkout/" in page
    assert _checkout(web, order, "alipay_page").status_code == 302  # another way works


def test_one_open_payment_at_a_time_then_change_the_method(web, gateways):
    order = rental_for(web.user)
    _checkout(web, order, "wechat_native")
    busy = _checkout(web, order, "alipay_page")
    assert busy.status_code == 400 and b"Another payment of this order is open; close it first." in busy.content
    assert b"You started paying with" in busy.content
    payment = Payment.objects.get()

    changed = web.post(f"/orders/{order.order_no}/payments/{payment.payment_no}/close/")

    assert changed["Location"] == f"/orders/{order.order_no}/checkout/"
    assert Payment.objects.get().status == "closed"
    assert _checkout(web, order, "alipay_page").status_code == 302


def test_gateway_outage_is_a_message_not_a_500(web, gateways):
    order = rental_for(web.user)
    gateways.fault("wechat.pay", "http_500")
    response = _checkout(web, order, "wechat_native")
    assert response.status_code == 400 and b"cannot be reached right now" in response.content
    assert Order.objects.get().status == "pending_payment"


def test_cancel_closes_the_open_payment_at_the_gateway(web, gateways):
    order = rental_for(web.user)
    _checkout(web, order, "wechat_native")
    payment = Payment.objects.get()
    web.post(f"/orders/{order.order_no}/cancel/")
    assert Order.objects.get().status == "cancelled" and Payment.objects.get().status == "closed"
    assert gateways.control(f"wechat/transactions/{payment.payment_no}")["wire"]["trade_state"] == "CLOSED"


def test_paid_at_the_last_second_is_not_called_expired(web, gateways):
    # given a payment made just before the deadline whose notification is lost
    order = rental_for(web.user)
    _checkout(web, order, "wechat_native")
    gateways.control(f"wechat/transactions/{Payment.objects.get().payment_no}/pay", json={})
    Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    page = web.get(result_url(order)).content.decode()

    # then the result page asked the gateway instead of saying "expired"
    assert "Payment complete" in page and Order.objects.get().status == "paid"


def test_wechat_sign_in_is_refused_without_the_sandbox(client, settings):
    settings.SANDBOX_ENABLED = False
    response = client.post("/login/", {"form": "wechat", "code": "alice"})
    assert response.status_code == 400 and b"use your password" in response.content
