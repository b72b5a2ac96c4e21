"""A real browser (Playwright + Debian's Chromium) through the whole staff refund flow:
support requests a refund in admin, finance approves it, the sandbox settles it, and admin shows
the refund ``succeeded`` and the order ``refunded``. Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.db import connection

from orders.models import Order
from payments.models import Payment
from payments.tests.flows import pay, rental, wait_status
from refunds.models import Refund
from refunds.tests.test_admin_helpers import staff_in

SHOTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"
PASSWORD = "pw-123456"  # StaffFactory's

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def browser(monkeypatch, chromium):
    from playwright import sync_api  # a dev requirement: missing is a failure, not a skip

    # Playwright's sync API runs an event loop in this thread; Django's ORM calls here stay synchronous
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()
        connection.close()  # the one the test body used while Playwright's loop was running
    _wait_for_server_threads()


def _wait_for_server_threads(timeout: float = 10.0) -> None:
    """The live server closes a request thread's database connection when the browser's keep-alive
    socket closes; wait for that so the test database can be dropped at the end of the session."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] == 0:
                return
        time.sleep(0.1)


def _login(browser, base_url: str, username: str, width: int = 1280):
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    return page


def _shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_support_requests_finance_approves_sandbox_settles(browser, live_server, notify_to, celery_eager, user_api):
    # given a customer's rental paid with WeChat through the sandbox
    order = rental(user_api)
    started = pay(user_api, order["order_no"], "wechat_native")
    assert started.status_code == 201, started.content
    payment_no = started.json()["payment_no"]
    notify_to.control(f"wechat/transactions/{payment_no}/pay", json={})
    wait_status(notify_to, payment_no)
    assert Order.objects.get(order_no=order["order_no"]).status == "paid"
    support = staff_in("support", username="support-e2e")
    finance = staff_in("finance", username="finance-e2e")

    # when support requests a full refund in admin
    page = _login(browser, live_server.url, support.username)
    page.goto(f"{live_server.url}/admin/refunds/refund/request/?order_no={order['order_no']}")
    page.wait_for_selector("#bo-order-summary")
    page.fill("#id_reason", "Compartment door would not open")
    _shot(page, "01_support_request_form")
    page.click("#bo-submit")
    page.wait_for_selector("ul.messagelist li.success")
    _shot(page, "02_support_refund_requested")
    refund = Refund.objects.get(order__order_no=order["order_no"])
    assert (refund.status, refund.source, refund.requested_by_id) == ("requested", "staff", support.pk)

    # and finance approves it from the queue, through the confirmation page
    page = _login(browser, live_server.url, finance.username)
    page.goto(f"{live_server.url}/admin/refunds/refund/?status__exact=requested")
    page.check(f"input[name=_selected_action][value='{refund.pk}']")
    page.select_option("select[name=action]", "approve_selected")
    _shot(page, "03_finance_queue")
    page.click("button[name=index]")
    page.wait_for_selector("#bo-summary")
    assert "1 refund(s), total ¥10.00" in page.inner_text("#bo-summary")
    page.fill("#id_note", "Door fault confirmed in the locker log")
    _shot(page, "04_finance_confirm")
    page.click("#bo-confirm")
    page.wait_for_selector("ul.messagelist li.success")
    _shot(page, "05_finance_approved")

    # then the refund went to the sandbox, which settles it and notifies us
    refund.refresh_from_db()
    assert refund.status == "processing" and refund.approved_by_id == finance.pk
    notify_to.control(f"wechat/refunds/{refund.refund_no}/settle", json={"status": "SUCCESS"})
    notify_to.wait_for(lambda: Refund.objects.get(pk=refund.pk).status == "succeeded", timeout=15)

    # and admin shows the refund succeeded and the order refunded
    page.goto(f"{live_server.url}/admin/refunds/refund/{refund.pk}/change/")
    assert page.inner_text("#bo-refund-status") == "Succeeded"
    assert page.inner_text("#bo-order-status") == "Refunded"
    assert page.inner_text("#site-name") == "Locker payments back office"
    assert page.inner_text("#bo-refund-amount") == "¥10.00"
    # the gateway's answer: named fields, then indented JSON
    assert page.locator("div.readonly", has_text="Succeeded: WeChat Pay says SUCCESS").count() == 1
    answers = page.inner_text("#bo-gateway-json")
    assert answers.startswith("[\n  {\n") and '"refund_id"' in answers
    # one time zone: the times on the page, and the refund number, are Shanghai time
    decided = refund.decided_at.astimezone(ZoneInfo("Asia/Shanghai"))
    assert decided.strftime("%Y-%m-%d %H:%M:%S CST") in page.content()
    stamped = datetime.strptime(refund.refund_no[2:16], "%Y%m%d%H%M%S").replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    assert abs((stamped - refund.created_at).total_seconds()) < 5  # not 8 hours off (UTC)
    # the audit trail fits its box (no horizontal overflow of the page)
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    _shot(page, "06_refund_succeeded")
    payment = Payment.objects.get(payment_no=payment_no)
    page.goto(f"{live_server.url}/admin/refunds/refund/payment-timeline/{payment.pk}/")
    assert "REFUND.SUCCESS" in page.content()
    _shot(page, "07_payment_timeline")
    page.goto(f"{live_server.url}/admin/refunds/refund/dashboard/")
    _shot(page, "08_dashboard")
    page.goto(f"{live_server.url}/admin/refunds/refund/audit-log/?object_type=refund")
    assert page.locator("#bo-audit-rows tbody.bo-event").count() == 4  # request, approve, submit, succeed
    _shot(page, "09_audit_log")
    page.goto(f"{live_server.url}/admin/")
    _shot(page, "10_admin_index")
    assert Order.objects.get(order_no=order["order_no"]).status == "refunded"
    assert payment.refunded_fen == payment.amount_fen
