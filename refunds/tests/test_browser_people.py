# ruff: noqa: F811  (the fixture imported from test_browser_admin is redefined as a test argument)
"""The back office as clerks use it on 1024-, 1366- and 1920-pixel screens, in a real browser
(Playwright + Debian's Chromium), over a working day made through the real flows
(``refunds.tests.scene``): the tables of a refund's page fit their box, identifiers are never broken
in the middle, raw bodies sit in a bounded scrollable block with the signature masked, money lists
fit at 1366 px, the index's links are one line each, confirmations speak in labels, the settlement
report keeps wallet spending apart and links every open discrepancy of a day, the charts' axes are
readable. Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import itertools
import re

import pytest

from refunds.tests.scene import back_office_scene
from refunds.tests.test_browser_admin import SHOTS, _login, browser  # noqa: F401 - fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
WIDTHS = (1024, 1366, 1920)

# Every identifier (.bo-id) inside ``scope`` that is broken over lines or runs past its table's box.
BROKEN_IDS = """(scope) => {
  const out = [];
  for (const root of document.querySelectorAll(scope)) {
    const box = root.getBoundingClientRect();
    for (const e of root.querySelectorAll('.bo-id')) {
      if (!e.offsetParent) continue;  // hidden (a collapsed <details>)
      const rects = e.getClientRects(), r = e.getBoundingClientRect();
      if (rects.length !== 1 || r.right > box.right + 1 || getComputedStyle(e).whiteSpace !== 'nowrap')
        out.push([e.textContent, rects.length, Math.round(r.right), Math.round(box.right)]);
    }
  }
  return out;
}"""
# Elements matching ``selector`` whose content is wider than their box (they would scroll sideways or clip).
OVERFLOWING = """(selector) => [...document.querySelectorAll(selector)]
  .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => [e.id || e.className, e.scrollWidth, e.clientWidth])"""


def _fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def _shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_the_back_office_fits_from_1024_pixels_and_keeps_numbers_whole(browser, live_server, notify_to):
    scene = back_office_scene(notify_to)
    base = live_server.url
    pages = {width: _login(browser, base, scene.finance.username, width) for width in WIDTHS}

    # --- a refund's page: both audit tables fit their box at every width ----------------------
    for name in ("wechat", "wallyt", "rejected", "wallet"):
        refund = scene.refund(name)
        for width, page in pages.items():
            page.goto(f"{base}/admin/refunds/refund/{refund.pk}/change/")
            where = f"{name} at {width}px"
            assert _fits(page), where
            assert page.evaluate(OVERFLOWING, "#bo-trail, .bo-trail, #events-group, #events-group table") == [], where
            assert page.evaluate(BROKEN_IDS, "#bo-trail, #events-group, #bo-refund-context") == [], where
            # every number is there, whole, in its own element (the full value in its title)
            ids = page.locator("#bo-trail .bo-id").all_inner_texts()
            assert refund.refund_no in ids and refund.order.order_no in ids, where
            # the details of an event (note, data, raw body) get the room of the table, never 0 px
            assert page.locator("#bo-trail tr.bo-detail").count() > 0, where
            narrowest = page.evaluate(
                "Math.min(...[...document.querySelectorAll('#bo-trail tr.bo-detail td[colspan]')]"
                ".map(td => td.getBoundingClientRect().width))"
            )
            assert narrowest >= 400, (where, narrowest)
            if width == 1024:
                _shot(page, f"30_refund_{name}_1024")
    page = pages[1024]
    # a raw body: a bounded block that scrolls, the signature masked (the XML of Wallyt)
    page.goto(f"{base}/admin/refunds/refund/{scene.refund('wallyt').pk}/change/")
    page.locator("#bo-trail details.bo-raw summary").first.click()
    raw = page.locator("#bo-trail details.bo-raw pre").first
    assert "<sign>[redacted]</sign>" in raw.inner_text() and "<status>" in raw.inner_text()
    style = raw.evaluate("e => [getComputedStyle(e).maxHeight, getComputedStyle(e).overflowY, e.clientWidth]")
    assert style[0].endswith("px") and style[1] == "auto" and style[2] >= 400, style
    assert page.evaluate("document.documentElement.scrollHeight") < 6000  # one raw body does not make it 7,525 px
    _shot(page, "31_refund_wallyt_raw_body_1024")
    # the named fields speak for what happened (a rejected refund was never sent; no user links for finance)
    page.goto(f"{base}/admin/refunds/refund/{scene.refund('rejected').pk}/change/")
    fields = page.inner_text("#content-main")
    assert re.search(r"Decision:\s*Rejected by finance at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d CST", fields)
    assert "not sent to WeChat Pay (rejected, never sent)" in fields and "Approved by" not in fields
    assert page.locator('a[href*="/admin/auth/user/"]').count() == 0

    # --- lists of money fit at 1366 px (and the longest, the discrepancies, at 1920 px) -------
    lists = {
        "refunds": "/admin/refunds/refund/",
        "orders": "/admin/orders/order/",
        "payments": "/admin/payments/payment/",
        "discrepancies": "/admin/finance/billdiscrepancy/",
        "bill_runs": "/admin/finance/billrun/",
        "notifications": "/admin/payments/gatewaynotification/",
        "ledger": "/admin/wallets/wallettransaction/",
        "refund_events": "/admin/refunds/refundevent/",
        "order_events": "/admin/orders/orderevent/",
    }
    for width in (1366, 1920):
        page = pages[width]
        for name, path in lists.items():
            page.goto(base + path)
            where = f"{name} at {width}px"
            assert page.locator("#result_list tbody tr").count() > 0, where
            assert page.evaluate(OVERFLOWING, "#changelist-form .results") == [], where
            assert _fits(page), where
            assert page.evaluate(BROKEN_IDS, "#changelist-form .results") == [], where
            if name != "bill_runs":  # a run is a day and a gateway; every other list names numbers
                assert page.locator("#changelist-form .results .bo-id").count() > 0, where
            if width == 1366:
                _shot(page, f"32_list_{name}_1366")
    page = pages[1366]
    page.goto(f"{base}/admin/refunds/refund/")
    amounts = page.locator("#result_list td.field-amount")
    assert all(re.fullmatch(r"¥\d[\d,]*\.\d\d", t) for t in amounts.all_inner_texts())  # "¥112.6" no more
    page.goto(f"{base}/admin/finance/billdiscrepancy/")
    listed = page.inner_text("#result_list")
    assert "Settled here, in no bill" in listed and "Wallyt" in listed and "last seen".upper() in listed.upper()

    # --- the index: every back-office link on one line ----------------------------------------
    for width, page in pages.items():
        page.goto(f"{base}/admin/")
        lines = page.evaluate("[...document.querySelectorAll('#bo-links th a')].map(a => a.getClientRects().length)")
        assert lines and set(lines) == {1}, (width, lines)
    _shot(pages[1366], "33_index_1366")

    # --- confirmations in labels --------------------------------------------------------------
    page = pages[1366]
    page.goto(f"{base}/admin/finance/billdiscrepancy/")
    page.locator("#result_list tbody tr").first.locator("input.action-select").check()
    page.select_option("select[name=action]", "resolve_with_note")
    page.click("button[name=index]")
    page.wait_for_selector("#bo-resolve-list")
    confirm = page.inner_text("#bo-resolve-list")
    assert "- ¥" not in confirm and "missing_remote" not in confirm and "wallyt" not in confirm
    assert "none" in confirm and "Open" in confirm
    assert page.locator("label.required[for=id_note]").count() == 1
    _shot(page, "34_resolve_confirmation")

    # --- the settlement report: wallet spending apart, every open discrepancy of a day linked ---
    page.goto(f"{base}/admin/refunds/refund/settlement/")
    assert "Wallet spending (internal)" in page.inner_text("#bo-settlement-totals")
    assert "Net settled is what the gateways settle to us" in page.inner_text("#bo-settlement-rule")
    _shot(page, "35_settlement_wallet_apart")
    page.locator('tr[data-gateway="wallyt"] a.bo-open-discrepancies').first.click()
    page.wait_for_selector("#result_list")
    listed = page.inner_text("#result_list")
    assert scene.payments["wallyt"] in listed and "Settled here, in no bill" in listed  # not the totals only
    assert "Day total differs" in listed
    _shot(page, "36_settlement_open_discrepancies")

    # --- the charts: a few round amounts on each y axis ---------------------------------------
    page.goto(f"{base}/admin/refunds/refund/dashboard/")
    axes = page.evaluate(
        "[...document.querySelectorAll('svg.bo-chart .axis.y')].map(g => [...g.querySelectorAll('text')]"
        ".map(t => t.getBoundingClientRect().top))"
    )
    assert axes and all(2 <= len(tops) <= 5 for tops in axes), axes
    assert all(min(abs(a - b) for a, b in itertools.pairwise(t)) >= 20 for t in axes if len(t) > 1), axes
    _shot(page, "37_dashboard_axes")

    # --- times carry the zone's name; the audit log and a payment's timeline fit at 1024 px ----
    page = pages[1024]
    page.goto(f"{base}/admin/refunds/refund/audit-log/")
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d CST", page.inner_text("#bo-audit-rows"))
    assert _fits(page) and page.evaluate(BROKEN_IDS, "#bo-audit-rows") == []
    _shot(page, "38_audit_log_1024")
    payment = scene.refund("wechat").payment
    page.goto(f"{base}/admin/refunds/refund/payment-timeline/{payment.pk}/")
    assert " CST" in page.inner_text("#bo-timeline") and _fits(page)
    assert page.evaluate(BROKEN_IDS, "#bo-timeline") == []
    _shot(page, "39_payment_timeline_1024")
