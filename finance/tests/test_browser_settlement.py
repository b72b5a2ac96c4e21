# ruff: noqa: F811  (the fixtures imported from the other tests are redefined as test arguments)
"""Support, then finance, then the settlement report, in a real browser (Playwright + Debian's
Chromium): support does not see it; finance reaches it from the back office's index, reads the
day's figures in yuan per channel, sees which bill's totals differ, follows the link to the
discrepancy, and downloads the workbook. Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import io
import re

import pytest
from openpyxl import load_workbook

from core.money import format_yuan
from finance.bills import bill_reconcile
from finance.models import BillDiscrepancy
from finance.settlement import settlement_report
from finance.tests.test_bills import _morning_after
from finance.tests.test_settlement import day_of_trades  # noqa: F401 - fixture
from refunds.tests.test_admin_helpers import staff_in
from refunds.tests.test_browser_admin import _login, _shot, browser  # noqa: F401 - fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_support_then_finance_then_the_settlement_report(browser, live_server, gateways, day_of_trades):
    day, _ = day_of_trades
    # the WeChat bill's summary states one fen more in fees than its rows
    gateways.control("wechat/bills/adjust", json={"totals_delta_fen": {"fees": 1}})
    bill_reconcile(bill_date=day, now=_morning_after(day))
    report = settlement_report(date_from=day, date_to=day)
    support = staff_in("support", username="support-settle")
    finance = staff_in("finance", username="finance-settle")

    # support: no settlement report in the back office, and the page itself is refused
    page = _login(browser, live_server.url, support.username)
    assert page.locator("#bo-settlement-link").count() == 0
    assert page.inner_text("#site-name") == "Locker payments back office"
    response = page.goto(f"{live_server.url}/admin/refunds/refund/settlement/")
    assert response is not None and response.status == 403
    _shot(page, "20_support_no_settlement")

    # finance: from the index to the report of the last 7 days
    page = _login(browser, live_server.url, finance.username)
    _shot(page, "21_finance_index")
    page.click("#bo-settlement-link")
    page.wait_for_selector("#bo-settlement-totals")
    total = report.total
    assert page.inner_text("#bo-total-gross") == format_yuan(total.gross_fen)
    assert page.inner_text("#bo-total-refunds") == format_yuan(total.refunds_fen)
    assert page.inner_text("#bo-total-fees") == format_yuan(total.fees_fen)
    assert page.inner_text("#bo-total-net") == format_yuan(total.net_fen)
    assert re.fullmatch(r"¥\d{1,3}(,\d{3})*\.\d\d", page.inner_text("#bo-total-net"))
    assert "Asia/Shanghai" in page.inner_text("#bo-settlement-filter")
    day_box = page.locator(f"#bo-day-{day.isoformat()}")
    rows = day_box.locator("tr[data-channel]")
    assert rows.count() == 3
    wechat_row = day_box.locator('tr[data-channel="wechat_native"]').inner_text()
    assert "WeChat Pay (QR code)" in wechat_row
    figures = report.gateway_figures(day, "wechat")
    for fen in (figures.gross_fen, figures.refunds_fen, figures.fees_fen, figures.net_fen):
        assert format_yuan(fen) in wechat_row
    check = day_box.locator('tr[data-gateway="wechat"]')
    assert "differs from the bill" in check.inner_text() and "fees -¥0.01" in check.inner_text()
    assert "matches the bill" in day_box.locator('tr[data-gateway="wallyt"]').inner_text()
    assert page.locator("svg.bo-chart").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    _shot(page, "22_finance_settlement_report")

    # the workbook it offers has the same net
    with page.expect_download() as download:
        page.click("#bo-settlement-xlsx")
    book = load_workbook(io.BytesIO(open(download.value.path(), "rb").read()))  # noqa: SIM115
    net_fen = [r[11] for r in book["Settlement"].iter_rows(min_row=2, values_only=True) if r[0] != "Total"]
    assert sum(net_fen) == total.net_fen

    # the discrepancy, in the existing workflow, amounts in yuan
    check.locator("a", has_text="open discrepanc").click()
    page.wait_for_selector("#result_list")
    listed = page.inner_text("#result_list")
    d = BillDiscrepancy.objects.get(gateway="wechat", reference=f"{day}:fees")
    assert f"{day}:fees" in listed and format_yuan(d.their_amount_fen) in listed
    assert "Day total differs" in listed
    _shot(page, "23_finance_total_mismatch")
    page.goto(f"{live_server.url}/admin/refunds/refund/dashboard/")
    assert "¥" in page.inner_text("#bo-window-3") and " fen" not in page.inner_text("#content-main")
    _shot(page, "24_finance_dashboard")
