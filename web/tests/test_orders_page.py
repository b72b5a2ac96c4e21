""" "My orders" and the refund request form (refunds.services.refund_request behind it)."""

import re
from datetime import datetime

import pytest
from django.utils import timezone

from core.tests.factories import UserFactory
from orders.services import order_open_door
from payments.services import payment_pay_with_wallet
from refunds.models import Refund
from web.tests.helpers import fund, rental_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(client, user):
    client.force_login(user)
    client.user = user
    return client


def paid_rental(user, hours: int = 2):
    order = rental_for(user, hours=hours)
    fund(user, order.amount_fen, reference=f"funds-{order.order_no}")
    now: datetime = timezone.now()
    payment_pay_with_wallet(user=user, order_no=order.order_no, now=now)
    order.refresh_from_db()
    return order


def test_orders_page_lists_my_orders_only(web):
    mine = paid_rental(web.user)
    pending = rental_for(web.user)
    other = rental_for(UserFactory())
    page = web.get("/orders/").content.decode()
    assert mine.order_no in page and pending.order_no in page and other.order_no not in page
    assert "Paid" in page and "Awaiting payment" in page and "Request a refund" in page
    assert re.search(r'time left <span class="time-left">1 h 59 min|time left <span class="time-left">2 h 00 min', page)
    assert f"/orders/{pending.order_no}/checkout/" in page


def test_request_a_full_refund(web):
    order = paid_rental(web.user)

    response = web.post(f"/orders/{order.order_no}/refund/", {"amount": "", "reason": "Changed my plans"}, follow=True)

    refund = Refund.objects.get()
    assert refund.order == order and refund.amount_fen == 1_000 and refund.requested_by == web.user
    text = response.content.decode()
    assert f"Refund {refund.refund_no} of ¥10.00 requested: it waits for our staff to approve it." in text
    assert "(requested)" not in text  # the status in words, not its code
    assert refund.refund_no in text and "Changed my plans" in text  # listed under the order


def test_request_a_partial_refund(web):
    order = paid_rental(web.user)
    web.post(f"/orders/{order.order_no}/refund/", {"amount": "2.50", "reason": "Shorter stay"})
    assert Refund.objects.get().amount_fen == 250


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"amount": "", "reason": ""}, "Tell us why you want a refund."),
        ({"amount": "abc", "reason": "x"}, "Enter an amount in yuan"),
        ({"amount": "0", "reason": "x"}, "Enter at least ¥0.01."),
        ({"amount": "0.001", "reason": "x"}, "no more than 2 decimal places"),
        ({"amount": "10.01", "reason": "x"}, "The refund would exceed what was paid."),
        ({"amount": "1", "reason": "x" * 201}, "at most 200 characters"),
    ],
)
def test_refund_form_bad_input(web, data, message):
    order = paid_rental(web.user)
    response = web.post(f"/orders/{order.order_no}/refund/", data)
    assert response.status_code == 400 and message in response.content.decode()
    assert not Refund.objects.exists()


def test_refund_of_an_unpaid_order_is_refused_by_the_service(web):
    order = rental_for(web.user)
    response = web.post(f"/orders/{order.order_no}/refund/", {"reason": "x"})
    assert response.status_code == 400 and b'class="errors"' in response.content and not Refund.objects.exists()


def test_refund_of_a_rental_in_use_needs_staff(web):
    order = paid_rental(web.user)
    order_open_door(order_no=order.order_no, user=web.user)
    response = web.post(f"/orders/{order.order_no}/refund/", {"reason": "x"})
    assert response.status_code == 400 and b"ask the staff" in response.content


def test_no_refund_form_once_everything_is_asked_back(web):
    order = paid_rental(web.user)
    web.post(f"/orders/{order.order_no}/refund/", {"reason": "all of it"})
    page = web.get("/orders/").content.decode()
    assert "Request a refund" not in page and Refund.objects.get().refund_no in page
