# ruff: noqa: F811  (the fixtures imported from test_browser are redefined as test arguments)
"""Overtime at pickup in a real browser: the customer comes back after the paid time (a test clock moves the
rental into the past, no sleeping), is asked for the overtime, pays it in the sandbox cashier, and the door
opens and the rental completes. Screenshots go to ``artifacts/screenshots/``."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from lockers.models import LockerEvent
from orders.models import Order
from web.tests.helpers import fund, move_rental_back
from web.tests.test_browser import (  # noqa: F401 - fixtures
    SHOTS,
    _expect,
    browser_page,
    expect_pickup_code,
    pay_with,
    shop,
    sign_in_and_pick,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_past_the_paid_time_the_customer_pays_overtime_and_the_door_opens(browser_page, shop, settings):
    expect, page = _expect(), browser_page
    settings.PICKUP_CODE_GRACE = timedelta(hours=1)
    fund(shop["user"], 1_000)  # the rental from the wallet; the overtime through WeChat Pay
    order_no = sign_in_and_pick(page, shop)
    pay_with(page, "wallet")
    expect_pickup_code(page, "overtime_rental_paid")

    # the customer comes back 1 h 30 min after the paid 2 hours (past the 1 h PICKUP_CODE_GRACE)
    move_rental_back(order_no, timedelta(hours=2) + timedelta(hours=1, minutes=30))
    page.reload()
    expect(page.locator("#time-left")).to_contain_text("overtime is due")
    expect(page.locator("#overtime-amount")).to_have_text("¥10.00")  # 2 started hours at ¥5.00
    page.screenshot(path=str(SHOTS / "overtime_due.png"), full_page=True)
    page.get_by_role("button", name="Pay overtime and open").click()

    page.wait_for_url(re.compile(r"/orders/OT\w+/checkout/$"))
    overtime = Order.objects.get(order_no=page.url.rstrip("/").split("/")[-2])
    assert (overtime.parent.order_no, overtime.amount_fen, overtime.status) == (order_no, 1_000, "pending_payment")
    expect(page.locator(".msg")).to_contain_text("pay the overtime of ¥10.00 to open the door")
    expect(page.locator("#overtime-what")).to_contain_text("2 started hours past the paid time")
    expect(page.locator("input[value=wallet]")).to_be_disabled()  # offered, but the wallet is empty now
    page.screenshot(path=str(SHOTS / "overtime_checkout.png"), full_page=True)
    pay_with(page, "wechat_native")
    page.wait_for_url(re.compile(r"/wait/$"))
    page.locator("#cashier-link").click()  # the sandbox cashier stands in for the phone scanning the QR code
    page.get_by_role("button", name=re.compile("Pay")).click()

    page.wait_for_url(re.compile(rf"/pay/result/\?order={order_no}$"))
    expect(page.get_by_role("heading", name="Rental complete")).to_be_visible()
    expect(page.locator(".msg.success")).to_contain_text("Overtime of ¥10.00 paid: the door of compartment M1")
    expect(page.locator("#time-left")).to_contain_text("the compartment is free again")
    page.screenshot(path=str(SHOTS / "overtime_paid_rental_complete.png"), full_page=True)
    rental = Order.objects.get(order_no=order_no)
    overtime.refresh_from_db()
    assert (overtime.status, rental.status, rental.compartment.status) == ("paid", "completed", "free")
    assert overtime.payments.get().channel == "wechat_native"
    command = LockerEvent.objects.filter(reference=order_no, action="door_open_command").last()
    assert command.data["purpose"] == "pickup"
