"""Page views without a gateway: sign in, choosing, checkout with the wallet, result, wallet page."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from core.tests.factories import UserFactory
from lockers.models import Compartment, PickupCode
from orders.models import Order
from payments.models import Payment
from payments.services import payment_pay_with_wallet
from wallets.models import Wallet
from web.tests.helpers import cabinet_with_compartments, fund, rental_for, result_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(client, user):
    client.force_login(user)
    client.user = user
    return client


# --- sign in -----------------------------------------------------------------------------------


def test_pages_ask_to_sign_in(client):
    for path in ("/", "/orders/", "/wallet/", "/pay/result/?order=X", "/orders/X/checkout/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), path


def test_password_sign_in(client):
    UserFactory(username="ann")
    page = client.get("/login/")
    assert page.status_code == 200 and b"locker-demo" in page.content and b"WeChat" in page.content
    response = client.post(
        "/login/", {"form": "password", "username": "ann", "password": "pw-123456", "next": "/wallet/"}
    )
    assert response.status_code == 302 and response["Location"] == "/wallet/"
    assert client.get("/wallet/").status_code == 200


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"username": "ann", "password": "wrong"}, b"Please enter a correct username and password"),
        ({"username": "", "password": ""}, b"This field is required."),
        ({}, b"This field is required."),
    ],
)
def test_password_sign_in_refused(client, data, message):
    UserFactory(username="ann")
    response = client.post("/login/", {"form": "password", **data})
    assert response.status_code == 400 and message in response.content
    assert "_auth_user_id" not in client.session


def test_sign_in_never_redirects_off_site(client):
    UserFactory(username="ann")
    response = client.post(
        "/login/", {"form": "password", "username": "ann", "password": "pw-123456", "next": "https://evil.example/"}
    )
    assert response["Location"] == "/"


def test_wechat_sandbox_sign_in_creates_and_reuses_the_user(client, settings):
    settings.SANDBOX_ENABLED, settings.WECHAT_MINI_SECRET = True, ""
    first = client.post("/login/", {"form": "wechat", "code": "alice"})
    assert first.status_code == 302
    user_id = client.session["_auth_user_id"]
    client.post("/logout/")
    client.post("/login/", {"form": "wechat", "code": "alice"})
    assert client.session["_auth_user_id"] == user_id
    assert client.post("/login/", {"form": "wechat", "code": "  "}).status_code == 400


def test_sign_out_is_a_post(web):
    assert web.get("/logout/").status_code == 405
    assert web.post("/logout/").status_code == 302
    assert web.get("/").status_code == 302


def test_csrf_is_enforced(user):
    client = Client(enforce_csrf_checks=True)
    assert client.post("/login/", {"form": "password", "username": "x", "password": "y"}).status_code == 403
    client.force_login(user)
    order = rental_for(user)
    assert client.post(f"/orders/{order.order_no}/checkout/", {"channel": "wallet"}).status_code == 403


# --- lockers and the hours selector ------------------------------------------------------------


def test_cabinet_list_and_free_compartments_with_prices(web):
    cabinet, _ = cabinet_with_compartments(("S", "M", "M"))
    listing = web.get("/")
    assert listing.status_code == 200 and b"Central Station" in listing.content and b"3 free" in listing.content
    page = web.get(f"/cabinets/{cabinet.pk}/")
    text = page.content.decode()
    assert page.status_code == 200
    assert "Small · ¥3.00 / hour" in text and "Medium · ¥5.00 / hour" in text and "M1" in text


def test_show_price_then_rent(web):
    cabinet, (small, *_) = cabinet_with_compartments(("S", "M"))
    quoted = web.post(f"/cabinets/{cabinet.pk}/", {"compartment": small.pk, "hours": 3, "action": "quote"})
    assert quoted.status_code == 200 and "¥9.00" in quoted.content.decode()
    assert not Order.objects.exists()

    rented = web.post(f"/cabinets/{cabinet.pk}/", {"compartment": small.pk, "hours": 3, "action": "rent"})

    order = Order.objects.get()
    assert rented.status_code == 302 and rented["Location"] == f"/orders/{order.order_no}/checkout/"
    assert order.amount_fen == 900 and order.user == web.user
    assert Compartment.objects.get(pk=small.pk).status == "reserved"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"hours": 2}, "Choose a compartment."),
        ({"compartment": "nope", "hours": 2}, "Choose a free compartment."),
        ({"compartment": 999999, "hours": 2}, "Choose a free compartment."),
        ({"compartment": "{c}", "hours": ""}, "Say for how many hours."),
        ({"compartment": "{c}", "hours": "two"}, "Hours must be a whole number."),
        ({"compartment": "{c}", "hours": 0}, "greater than or equal to 1"),
        ({"compartment": "{c}", "hours": 73}, "At most 72 hours."),
        ({"compartment": "{c}", "hours": 10**30}, "At most 72 hours."),
    ],
)
def test_rent_form_bad_input(web, data, message):
    cabinet, (compartment,) = cabinet_with_compartments(("M",))
    data = {k: (compartment.pk if v == "{c}" else v) for k, v in data.items()}
    response = web.post(f"/cabinets/{cabinet.pk}/", {**data, "action": "rent"})
    assert response.status_code == 400 and message in response.content.decode()
    assert not Order.objects.exists()


def test_compartment_of_another_cabinet_or_taken_is_refused(web):
    cabinet, (mine,) = cabinet_with_compartments(("M",))
    _, (other,) = cabinet_with_compartments(("M",))
    response = web.post(f"/cabinets/{cabinet.pk}/", {"compartment": other.pk, "hours": 1, "action": "rent"})
    assert response.status_code == 400 and b"Choose a free compartment." in response.content
    rental_for_other = UserFactory()
    from orders.services import order_create_rental

    order_create_rental(user=rental_for_other, compartment_id=mine.pk, hours=1)
    taken = web.post(f"/cabinets/{cabinet.pk}/", {"compartment": mine.pk, "hours": 1, "action": "rent"})
    assert taken.status_code == 400 and b"No free compartment here" in taken.content


def test_offline_cabinet_is_a_form_error_not_a_500(web):
    cabinet, (compartment,) = cabinet_with_compartments(("M",))
    cabinet.is_online = False
    cabinet.save()
    response = web.post(f"/cabinets/{cabinet.pk}/", {"compartment": compartment.pk, "hours": 1, "action": "rent"})
    assert response.status_code == 400 and b"This cabinet is offline." in response.content


def test_quote_json(web):
    _, (compartment,) = cabinet_with_compartments(("M",))
    ok = web.get(f"/quote/?compartment={compartment.pk}&hours=3").json()
    assert ok == {"amount_fen": 1500, "total": "15.00", "hours": 3, "billed_hours": 3}
    assert web.get(f"/quote/?compartment={compartment.pk}&hours=x").status_code == 400
    too_long = web.get(f"/quote/?compartment={compartment.pk}&hours=999")
    assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "invalid_input"
    assert "72" in too_long.json()["error"]["details"]["hours"][0]
    assert web.get("/quote/?compartment=999999&hours=1").status_code == 404
    assert web.get("/cabinets/999999/").status_code == 404


# --- checkout with the wallet, result, door ----------------------------------------------------


def test_checkout_shows_amount_and_wallet_balance(web):
    order = rental_for(web.user)
    fund(web.user, 300)
    page = web.get(f"/orders/{order.order_no}/checkout/").content.decode()
    assert "¥10.00" in page and "balance ¥3.00, not enough" in page and 'value="wechat_native"' in page


@pytest.mark.parametrize(("data", "message"), [({}, "Choose how to pay."), ({"channel": "bitcoin"}, "Choose one of")])
def test_checkout_bad_channel(web, data, message):
    order = rental_for(web.user)
    response = web.post(f"/orders/{order.order_no}/checkout/", data)
    assert response.status_code == 400 and message in response.content.decode()


def test_wallet_without_enough_balance_is_a_form_error(web):
    order = rental_for(web.user)
    response = web.post(f"/orders/{order.order_no}/checkout/", {"channel": "wallet"})
    assert response.status_code == 400 and b"The wallet balance is not enough." in response.content
    assert Order.objects.get(pk=order.pk).status == "pending_payment" and not Payment.objects.exists()


def test_pay_with_the_wallet_then_open_the_door(web):
    order = rental_for(web.user)
    fund(web.user, 5_000)

    paid = web.post(f"/orders/{order.order_no}/checkout/", {"channel": "wallet"})

    assert paid.status_code == 302 and paid["Location"] == result_url(order)
    page = web.get(paid["Location"]).content.decode()
    code = PickupCode.objects.get(reference=order.order_no, status="active").code
    assert ("Payment complete" in page and code in page and "1 h 59 min" in page) or "2 h 00 min" in page
    assert Wallet.objects.get(user=web.user).balance_fen == 4_000
    assert "Opening the door for pickup ends the rental" in page
    opened = web.post(f"/orders/{order.order_no}/open-door/", follow=True).content.decode()
    assert "is opening. Your rental is complete" in opened and "Rental complete" in opened
    assert "Open again" in opened and "the compartment is free again" in opened
    assert Compartment.objects.get(pk=order.compartment_id).status == "free"
    again = web.post(f"/orders/{order.order_no}/open-door/", follow=True).content.decode()
    assert "is opening." in again and "Your rental is complete" not in again  # opened again: a forgotten item
    # a paid order has nothing to pay any more: the checkout sends to the result
    assert web.get(f"/orders/{order.order_no}/checkout/")["Location"] == result_url(order)


def test_past_the_pickup_time_the_page_asks_for_overtime_and_paying_it_opens_the_door(web, settings):
    order = rental_for(web.user, hours=1)
    fund(web.user, 5_000)
    paid_at = timezone.now() - timedelta(hours=1) - settings.PICKUP_CODE_GRACE - timedelta(minutes=1)
    payment_pay_with_wallet(user=web.user, order_no=order.order_no, now=paid_at)

    page = web.get(result_url(order)).content.decode()
    assert "overtime is due to open the door" in page and "Open the door" not in page
    assert "Overtime due: <strong" in page and "¥10.00</strong> for 2 started hours" in page
    assert PickupCode.objects.get(reference=order.order_no).code not in page  # it opens nothing now
    asked = web.post(f"/orders/{order.order_no}/open-door/")
    overtime = Order.objects.get(parent=order)
    assert asked.status_code == 302 and asked["Location"] == f"/orders/{overtime.order_no}/checkout/"
    checkout = web.get(asked["Location"]).content.decode()
    assert "pay the overtime of ¥10.00 to open the door" in checkout and "Overtime: 2 started hours" in checkout

    paid = web.post(asked["Location"], {"channel": "wallet"}, follow=True).content.decode()

    assert "Overtime of ¥10.00 paid: the door of compartment" in paid and "Rental complete" in paid
    assert Order.objects.get(pk=order.pk).status == "completed"
    assert Wallet.objects.get(user=web.user).balance_fen == 5_000 - 500 - 1_000


def test_an_abandoned_rental_page_sends_the_customer_to_the_staff(web, settings):
    from orders.abandoned import rentals_abandon_overdue

    order = rental_for(web.user, hours=1)
    fund(web.user, 5_000)
    paid_at = timezone.now() - timedelta(hours=1) - settings.ABANDONED_AFTER - timedelta(minutes=1)
    payment_pay_with_wallet(user=web.user, order_no=order.order_no, now=paid_at)
    rentals_abandon_overdue()

    page = web.get(result_url(order)).content.decode()
    assert "left too long: the staff clear the compartment" in page and "Pay overtime" not in page
    opened = web.post(f"/orders/{order.order_no}/open-door/", follow=True).content.decode()
    assert "This rental was left too long" in opened


def test_open_door_of_an_unpaid_order_is_a_message(web):
    order = rental_for(web.user)
    response = web.post(f"/orders/{order.order_no}/open-door/", follow=True)
    assert response.status_code == 200 and b"Only a paid rental can open its door." in response.content


def test_expired_order_shows_the_expiry_and_try_again_frees_it(web):
    order = rental_for(web.user, hours=3)
    Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    for path in (f"/orders/{order.order_no}/checkout/", f"/orders/{order.order_no}/wait/"):
        assert web.get(path)["Location"] == result_url(order)
    page = web.get(result_url(order))
    assert b"This order has expired" in page.content and b"Try again" in page.content
    assert web.get(f"/orders/{order.order_no}/status/").json()["done"] is True

    again = web.post(f"/orders/{order.order_no}/retry/")

    cabinet_id = order.compartment.cabinet_id
    assert again["Location"] == f"/cabinets/{cabinet_id}/?compartment={order.compartment_id}&hours=3"
    assert Order.objects.get(pk=order.pk).status == "cancelled"
    assert Compartment.objects.get(pk=order.compartment_id).status == "free"
    assert b'value="3"' in web.get(again["Location"]).content


def test_cancel_an_unpaid_order(web):
    order = rental_for(web.user)
    response = web.post(f"/orders/{order.order_no}/cancel/", follow=True)
    assert b"This order is cancelled" in response.content
    assert Compartment.objects.get(pk=order.compartment_id).status == "free"


def test_result_page_needs_an_order(web):
    assert web.get("/pay/result/").status_code == 404
    assert web.get("/pay/result/?order=NOPE").status_code == 404
    assert web.get("/pay/result/?outTradeNo=NOPE").status_code == 404


def test_another_users_order_is_404_everywhere(web):
    order = rental_for(UserFactory())
    n = order.order_no
    for path in (f"/orders/{n}/checkout/", f"/orders/{n}/wait/", f"/orders/{n}/status/", f"/pay/result/?order={n}"):
        assert web.get(path).status_code == 404, path
    for path in ("checkout/", "sync/", "open-door/", "cancel/", "retry/", "refund/", "payments/PYX/close/"):
        assert web.post(f"/orders/{n}/{path}", {"channel": "wallet", "reason": "x"}).status_code == 404, path
    assert Order.objects.get(pk=order.pk).status == "pending_payment"


# --- wallet page -------------------------------------------------------------------------------


def test_wallet_page_shows_balance_and_ledger(web):
    fund(web.user, 1_234)
    page = web.get("/wallet/").content.decode()
    assert "¥12.34" in page and "test-funds" in page and "Adjustment" in page


def test_top_up_creates_an_order_and_goes_to_checkout(web):
    response = web.post("/wallet/", {"amount": "50.5"})
    order = Order.objects.get()
    assert order.kind == "wallet_topup" and order.amount_fen == 5_050
    assert response["Location"] == f"/orders/{order.order_no}/checkout/"
    page = web.get(response["Location"]).content.decode()
    assert 'value="wallet"' not in page and "Wallet top-up" in page  # a top-up is not paid from the wallet
    refused = web.post(f"/orders/{order.order_no}/checkout/", {"channel": "wallet"})
    assert refused.status_code == 400


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("", "Enter an amount."),
        ("abc", "Enter an amount in yuan"),
        ("0", "Top up between ¥0.01 and ¥5000.00."),
        ("-5", "Top up between"),
        ("1.234", "Ensure that there are no more than 2 decimal places."),
        ("5000.01", "Top up between"),
        ("NaN", "Enter an amount in yuan"),
        ("Infinity", "Enter an amount in yuan"),
        ("99999999999", "no more than 9 digits"),
    ],
)
def test_top_up_bad_amounts(web, amount, message):
    response = web.post("/wallet/", {"amount": amount})
    assert response.status_code == 400 and message in response.content.decode()
    assert not Order.objects.exists()


# --- after a refund ------------------------------------------------------------------------------


def test_a_fully_refunded_order_says_refunded_with_its_refunds_and_no_time_left(
    web, celery_eager, django_capture_on_commit_callbacks
):
    from refunds.services import refund_approve, refund_request
    from refunds.tests.test_admin_helpers import staff_in

    order = rental_for(web.user)
    fund(web.user, 5_000)
    web.post(f"/orders/{order.order_no}/checkout/", {"channel": "wallet"})
    support, finance = staff_in("support"), staff_in("finance")
    partial = refund_request(
        order_no=order.order_no, amount_fen=300, reason="late", requested_by=support, source="staff"
    )
    with django_capture_on_commit_callbacks(execute=True):  # the wallet refund is sent after commit
        refund_approve(refund_id=partial.pk, approver=finance, note="ok")
    page = web.get(result_url(order)).content.decode()
    # partly refunded, still running: the time left stays, and the refund is listed
    assert "Partially refunded" in page and "Time left" in page and partial.refund_no in page and "¥3.00" in page
    rest = refund_request(order_no=order.order_no, amount_fen=None, reason="door", requested_by=support, source="staff")
    with django_capture_on_commit_callbacks(execute=True):
        refund_approve(refund_id=rest.pk, approver=finance, note="ok")
    assert Order.objects.get(pk=order.pk).status == "refunded"

    page = web.get(result_url(order)).content.decode()

    assert "<h1>Refunded</h1>" in page and "refunded in full" in page
    assert "Payment complete" not in page and "Time left" not in page and "Open the door" not in page
    assert partial.refund_no in page and rest.refund_no in page and "¥7.00" in page and "Succeeded" in page
    orders = web.get("/orders/").content.decode()
    assert 'class="badge status-refunded">Refunded<' in orders
    # the order's date is its own line, never a line that starts with "·"
    assert "· " + timezone.localtime(order.created_at).strftime("%-d %b") not in orders
