"""End to end in a real browser (Playwright + Debian's Chromium) against a live server and the
sandbox gateways: pick a compartment, pay in the sandbox cashier, land on the result page.

Screenshots of each final page go to ``artifacts/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connections
from django.utils import timezone

from core.tests.factories import UserFactory
from orders.models import Order
from web.tests.helpers import cabinet_with_compartments, fund

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
SHOTS = Path(django_settings.BASE_DIR) / "artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def browser_page(live_server, monkeypatch, chromium):
    from playwright import sync_api  # a dev requirement: missing is a failure, not a skip

    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=["--no-sandbox", "--disable-background-networking"]
        )
        context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
        page = context.new_page()
        page.set_default_timeout(20_000)
        yield page
        context.close()
        browser.close()
        connections.close_all()  # the ones the test's ORM calls opened while Playwright's loop was running


@pytest.fixture
def shop(notify_to, live_server, settings):
    """Gateways in the sandbox, notifications and the Alipay return reaching the live server."""
    settings.SANDBOX_BASE_URL = notify_to.base_url
    settings.PAYMENT_RESULT_URL = f"{live_server.url}/pay/result/"
    cabinet_with_compartments(("S", "M", "M", "L"))
    user = UserFactory(username="walker")
    return {"base": live_server.url, "user": user, "sandbox": notify_to}


def _expect():
    from playwright.sync_api import expect

    return expect


def sign_in_and_pick(page, shop, *, shots: bool = False) -> str:
    """Sign in, open the cabinet, choose a medium compartment for 2 hours; returns the order number."""
    expect = _expect()
    page.goto(f"{shop['base']}/")
    if shots:
        page.screenshot(path=str(SHOTS / "login.png"), full_page=True)
    page.fill("#id_username", "walker")
    page.fill("#id_password", "pw-123456")
    page.get_by_role("button", name="Sign in", exact=True).click()
    if shots:
        page.screenshot(path=str(SHOTS / "cabinets.png"), full_page=True)
    page.get_by_role("link", name=re.compile(r"\d+ free")).first.click()
    page.get_by_label("M1").check()
    page.fill("#id_hours", "2")
    expect(page.locator("#total")).to_have_text("¥10.00")  # the server's price, fetched by rent.js
    if shots:
        page.screenshot(path=str(SHOTS / "cabinet.png"), full_page=True)
    page.get_by_role("button", name="Rent and pay").click()
    page.wait_for_url(re.compile(r"/orders/LK\w+/checkout/$"))
    return page.url.rstrip("/").split("/")[-2]


def pay_with(page, channel: str) -> None:
    page.locator(f"input[name=channel][value={channel}]").check()
    page.get_by_role("button", name=re.compile(r"^Pay ¥")).click()


def expect_pickup_code(page, name: str) -> None:
    expect = _expect()
    page.wait_for_url(re.compile(r"/pay/result/"))
    expect(page.locator("#pickup-code")).to_have_text(re.compile(r"^\d{6}$"))
    expect(page.get_by_role("button", name="Open the door")).to_be_visible()
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_wechat_native_in_the_browser(browser_page, shop):
    page, started = browser_page, time.monotonic()
    order_no = sign_in_and_pick(page, shop, shots=True)
    page.screenshot(path=str(SHOTS / "checkout.png"), full_page=True)
    pay_with(page, "wechat_native")
    page.wait_for_url(re.compile(r"/wait/$"))
    _expect()(page.locator(".qr svg")).to_be_visible()
    page.screenshot(path=str(SHOTS / "wechat_native_wait.png"), full_page=True)

    # the sandbox cashier stands in for the phone that scans the QR code
    page.locator("#cashier-link").click()
    page.get_by_role("button", name=re.compile("Pay")).click()

    expect_pickup_code(page, "wechat_native_result")
    assert Order.objects.get(order_no=order_no).status == "paid"
    print(f"wechat_native browser flow: {time.monotonic() - started:.1f}s")


def test_alipay_page_in_the_browser(browser_page, shop):
    page, started = browser_page, time.monotonic()
    order_no = sign_in_and_pick(page, shop)
    pay_with(page, "alipay_page")
    page.wait_for_url(re.compile(re.escape(shop["sandbox"].base_url)))
    page.get_by_role("button", name=re.compile("Pay")).click()  # Alipay's cashier, then its return_url

    expect_pickup_code(page, "alipay_page_result")
    assert "outTradeNo=" in page.url and Order.objects.get(order_no=order_no).status == "paid"
    print(f"alipay_page browser flow: {time.monotonic() - started:.1f}s")


def test_wallet_in_the_browser(browser_page, shop):
    page, started = browser_page, time.monotonic()
    fund(shop["user"], 5_000)
    sign_in_and_pick(page, shop)
    _expect()(page.get_by_text("balance ¥50.00")).to_be_visible()
    pay_with(page, "wallet")

    expect_pickup_code(page, "wallet_result")
    page.goto(f"{shop['base']}/wallet/")
    _expect()(page.locator("#balance")).to_have_text("¥40.00")
    page.screenshot(path=str(SHOTS / "wallet_page.png"), full_page=True)
    page.goto(f"{shop['base']}/orders/")
    _expect()(page.get_by_text("Request a refund")).to_be_visible()
    page.screenshot(path=str(SHOTS / "orders.png"), full_page=True)
    print(f"wallet browser flow: {time.monotonic() - started:.1f}s")


def test_the_rental_ends_at_pickup_and_the_compartment_is_rented_again_in_the_browser(browser_page, shop):
    expect, page = _expect(), browser_page
    fund(shop["user"], 5_000)
    order_no = sign_in_and_pick(page, shop)
    pay_with(page, "wallet")
    expect_pickup_code(page, "rental_paid")
    expect(page.locator("#time-left")).to_contain_text(re.compile(r"1 h 59 min|2 h 00 min"))

    # the customer comes back within the paid time and opens the door for pickup
    page.get_by_role("button", name="Open the door").click()

    expect(page.get_by_role("heading", name="Rental complete")).to_be_visible()
    expect(page.get_by_text("is opening. Your rental is complete")).to_be_visible()
    expect(page.locator("#time-left")).to_contain_text("the compartment is free again")
    expect(page.get_by_role("button", name="Open again")).to_be_visible()  # a forgotten item, for a short while
    page.screenshot(path=str(SHOTS / "rental_complete.png"), full_page=True)
    order = Order.objects.get(order_no=order_no)
    assert order.status == "completed" and order.compartment.status == "free"

    # the compartment is free again: the next rental of it works
    page.goto(f"{shop['base']}/")
    page.get_by_role("link", name=re.compile(r"\d+ free")).first.click()
    page.get_by_label("M1").check()
    page.fill("#id_hours", "1")
    page.get_by_role("button", name="Rent and pay").click()
    page.wait_for_url(re.compile(r"/orders/LK\w+/checkout/$"))
    again = Order.objects.get(order_no=page.url.rstrip("/").split("/")[-2])
    assert again.compartment_id == order.compartment_id and again.compartment.status == "reserved"


def test_expired_order_in_the_browser(browser_page, shop):
    page = browser_page
    order_no = sign_in_and_pick(page, shop)
    # the user walks away; the 15 minutes pass
    Order.objects.filter(order_no=order_no).update(expires_at=timezone.now() - timedelta(seconds=1))
    pay_with(page, "wechat_native")

    page.wait_for_url(re.compile(r"/pay/result/"))
    _expect()(page.get_by_role("heading", name="This order has expired")).to_be_visible()
    page.screenshot(path=str(SHOTS / "expired_result.png"), full_page=True)
    page.get_by_role("button", name="Try again").click()
    page.wait_for_url(re.compile(r"/cabinets/\d+/\?compartment="))
    assert Order.objects.get(order_no=order_no).status == "cancelled"
