# ruff: noqa: F811  (the fixtures imported from test_browser are redefined as test arguments)
"""The customer pages on a phone, in a real browser (Playwright + Debian's Chromium): the channels a
user is offered (and why one is missing), channel names, yuan, long numbers kept whole or visibly
shortened with a Copy button, and the sandbox cashier's pending-trades index. Screenshots go to
``artifacts/screenshots/``."""

from __future__ import annotations

import re

import pytest

from orders.models import Order
from refunds.models import Refund
from web.tests.helpers import fund
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


def test_password_user_is_offered_what_they_can_finish_and_told_why_not_wallyt(browser_page, shop):
    page, expect = browser_page, _expect()
    fund(shop["user"], 300)  # ¥3.00: not enough for a ¥10.00 rental
    sign_in_and_pick(page, shop)
    offered = page.locator("input[name=channel]")
    values = [offered.nth(i).get_attribute("value") for i in range(offered.count())]
    assert values == ["wechat_native", "wechat_h5", "alipay_page", "alipay_wap", "wallet"]
    expect(page.locator("input[value=wallet]")).to_be_disabled()
    expect(page.get_by_text("balance ¥3.00, not enough")).to_be_visible()
    missing = page.locator('#not-offered li[data-channel="wallyt_jsapi"]')
    expect(missing).to_contain_text("needs a WeChat sign-in")
    expect(page.get_by_role("button", name="Pay ¥10.00")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing runs off a phone's screen
    page.screenshot(path=str(SHOTS / "customer_checkout_channels_password_user.png"), full_page=True)


def test_wechat_user_is_offered_wallyt(browser_page, shop):
    page, expect = browser_page, _expect()
    page.goto(f"{shop['base']}/login/")
    page.fill("#id_code", "phone-user")
    page.get_by_role("button", name="Sign in with WeChat").click()
    page.get_by_role("link", name=re.compile(r"\d+ free")).first.click()
    page.get_by_label("M1").check()
    page.fill("#id_hours", "2")
    page.get_by_role("button", name="Rent and pay").click()
    page.wait_for_url(re.compile(r"/checkout/$"))
    expect(page.locator("input[value=wallyt_jsapi]")).to_be_visible()
    expect(page.locator("#not-offered")).to_have_count(0)
    page.screenshot(path=str(SHOTS / "customer_checkout_channels_wechat_user.png"), full_page=True)


def test_wallet_payment_result_orders_and_long_numbers_on_a_phone(browser_page, shop):
    page, expect = browser_page, _expect()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=shop["base"])
    fund(shop["user"], 332_271)
    order_no = sign_in_and_pick(page, shop)
    expect(page.get_by_text("balance ¥3,322.71")).to_be_visible()  # thousands separated
    pay_with(page, "wallet")
    expect_pickup_code(page, "customer_result_wallet")
    expect(page.locator("#result")).to_contain_text("¥10.00 · Wallet")  # capitalised like the others
    # a refund request, so that the orders page lists a refund number too
    page.goto(f"{shop['base']}/orders/")
    page.locator("summary", has_text="Request a refund").click()
    page.fill(f"#id_{order_no}_amount", "2.50")
    page.fill(f"#id_{order_no}_reason", "Changed my mind")
    page.get_by_role("button", name="Request refund").click()
    expect(page.locator(".msg.success")).to_contain_text("of ¥2.50 requested")
    refund_no = Refund.objects.get(order__order_no=order_no).refund_no

    for number in (order_no, refund_no):
        code = page.locator(f'.ident code[title="{number}"]').first
        expect(code).to_have_text(number)  # the whole number is there (the title too)
        box = code.bounding_box()
        line = code.evaluate("e => parseFloat(getComputedStyle(e).lineHeight) || e.getBoundingClientRect().height")
        assert box and box["height"] <= line * 1.3, f"{number} wraps: {box}"  # one line, never broken
        assert box["x"] + box["width"] <= 390, f"{number} runs off the screen: {box}"
    copy = page.locator(f'.ident button[data-copy="{refund_no}"]')
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == refund_no
    page.screenshot(path=str(SHOTS / "customer_orders_phone.png"), full_page=True)
    page.goto(f"{shop['base']}/wallet/")
    expect(page.locator(".ledger")).to_contain_text("-¥10.00")
    expect(page.locator("#balance")).to_have_text("¥3,312.71")
    page.screenshot(path=str(SHOTS / "customer_wallet_phone.png"), full_page=True)
    assert Order.objects.get(order_no=order_no).status == "paid"


def test_sandbox_cashier_lists_pending_trades_newest_first_and_finds_one(browser_page, shop, user_api):
    from payments.tests.flows import pay, rental

    page, expect = browser_page, _expect()
    made = []
    for _ in range(3):
        order = rental(user_api)
        started = pay(user_api, order["order_no"], "wechat_native")
        made.append((order["order_no"], started.json()["payment_no"]))
    sandbox = shop["sandbox"].base_url
    page.goto(f"{sandbox}/cashier/")
    first = page.locator("table.index tbody tr").first
    expect(first).to_contain_text(made[-1][1])  # newest first
    expect(first).to_contain_text(made[-1][0])  # with its order
    expect(first).to_contain_text("QR code (Native)")
    expect(first).to_contain_text(re.compile(r"¥\d+\.\d\d"))
    expect(first).to_contain_text(re.compile(r"20\d\d-\d\d-\d\d \d\d:\d\d:\d\d"))
    page.screenshot(path=str(SHOTS / "sandbox_cashier_index.png"), full_page=True)
    page.fill("input[name=q]", made[0][1])
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#count")).to_have_text("1 pending trade, newest first")
    page.locator("table.index a").first.click()
    expect(page.get_by_role("button", name=re.compile("Pay"))).to_be_visible()
    page.screenshot(path=str(SHOTS / "sandbox_cashier_found.png"), full_page=True)


ONE_LINE_AND_ON_SCREEN = """(selector) => [...document.querySelectorAll(selector)].filter(e => e.offsetParent)
  .filter(e => e.getClientRects().length !== 1 || e.getBoundingClientRect().right > innerWidth + 1)
  .map(e => [e.textContent, e.getClientRects().length, Math.round(e.getBoundingClientRect().right)])"""


def test_the_wallet_history_fits_a_phone_with_amounts_on_one_line(browser_page, shop):
    page, expect = browser_page, _expect()
    fund(shop["user"], 100_000_000)  # ¥1,000,000.00: the widest amounts a wallet shows
    order_no = sign_in_and_pick(page, shop)
    pay_with(page, "wallet")
    expect_pickup_code(page, "customer_result_before_refund")
    for width in (320, 360, 414):
        page.set_viewport_size({"width": width, "height": 800})
        page.goto(f"{shop['base']}/wallet/")
        expect(page.locator(".ledger")).to_contain_text("-¥10.00")
        assert page.evaluate("document.documentElement.scrollWidth") <= width, width  # no sideways scrolling
        # "+" stays with its amount, and every amount and balance is one line
        assert page.evaluate(ONE_LINE_AND_ON_SCREEN, ".ledger .money") == [], width
        assert re.fullmatch(r"[+-]¥[\d,]+\.\d\d", page.locator(".ledger .amount").first.inner_text())
        # a long number is shortened visibly (whole in its title, a Copy beside it), never broken
        assert page.evaluate(ONE_LINE_AND_ON_SCREEN, ".ledger .ident code, .ledger .ident .copy") == [], width
        page.screenshot(path=str(SHOTS / f"customer_wallet_{width}.png"), full_page=True)
        page.goto(f"{shop['base']}/orders/")
        assert page.evaluate("document.documentElement.scrollWidth") <= width, width
        when = page.locator(f"#order-{order_no} .when").inner_text()
        assert not when.startswith("·") and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d CST", when), when
    page.screenshot(path=str(SHOTS / "customer_orders_414.png"), full_page=True)


def test_the_sandbox_cashier_keeps_numbers_whole_on_a_phone(browser_page, shop, user_api):
    from payments.tests.flows import pay, rental

    page = browser_page
    order = rental(user_api)
    payment_no = pay(user_api, order["order_no"], "wechat_native").json()["payment_no"]
    page.set_viewport_size({"width": 320, "height": 700})
    sandbox = shop["sandbox"].base_url
    assert page.goto(f"{sandbox}/favicon.ico").status == 200  # no 404 in the console of every page
    page.goto(f"{sandbox}/cashier/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    assert page.evaluate(ONE_LINE_AND_ON_SCREEN, "table.index code") == []
    row = page.locator("table.index tbody tr").first
    number, amount = row.locator("code").bounding_box(), row.locator("td.amount-cell").bounding_box()
    overlap = not (
        number["x"] + number["width"] <= amount["x"]
        or amount["x"] + amount["width"] <= number["x"]
        or number["y"] + number["height"] <= amount["y"]
        or amount["y"] + amount["height"] <= number["y"]
    )
    assert not overlap, (number, amount)  # the order's number never runs under the amount
    page.screenshot(path=str(SHOTS / "sandbox_cashier_index_320.png"), full_page=True)
    page.goto(f"{sandbox}/cashier/wechat/{payment_no}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    assert page.evaluate(ONE_LINE_AND_ON_SCREEN, "code") == []
    page.screenshot(path=str(SHOTS / "sandbox_cashier_trade_320.png"), full_page=True)
