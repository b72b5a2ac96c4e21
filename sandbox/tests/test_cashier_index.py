"""The cashier's pending-trades index (newest first, paged, searchable) and the bills' control API."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import requests

from sandbox.cashier import PAGE_SIZE, render_index
from sandbox.state import CST, Trade
from sandbox.testing import SandboxHandle

START = dt.datetime(2026, 5, 1, 8, 0, tzinfo=CST)


def _trades(n: int) -> list[Trade]:
    gateways = ("wechat", "alipay", "wallyt")
    types = {"wechat": "NATIVE", "alipay": "FAST_INSTANT_TRADE_PAY", "wallyt": "pay.weixin.jspay"}
    return [
        Trade(
            gateway=gateways[i % 3],
            out_trade_no=f"PY{i:04d}",
            transaction_id=f"T{i}",
            amount=100 * i + 5,
            trade_type=types[gateways[i % 3]],
            description=f"Locker rental 2h LK{i:04d}",
            notify_url="",
            created_at=START + dt.timedelta(minutes=i),
        )
        for i in range(n)
    ]


def _numbers(html: str) -> list[str]:
    return re.findall(r"<code>(PY\d{4})</code>", html)


def test_newest_first_paged_with_order_channel_amount_and_time():
    trades = _trades(60)
    first = render_index(trades).body.decode()
    assert _numbers(first) == [f"PY{i:04d}" for i in range(59, 59 - PAGE_SIZE, -1)]
    assert "60 pending trades" in first and "page 1 of 3" in first and "older &rsaquo;" in first
    row = first.split("<code>PY0059</code>")[1].split("</tr>")[0]
    assert "Locker rental 2h LK0059" in row and "¥59.05" in row
    before = first.split("<code>PY0059</code>")[0].rsplit("<tr>", 1)[1]
    assert "2026-05-01 08:59:00" in before and "微信支付 WeChat Pay" not in before  # 59 % 3 == 2: Wallyt
    assert "Wallyt" in before and "WeChat mini-program (jspay)" in before
    last = render_index(trades, page_arg="3").body.decode()
    assert _numbers(last) == [f"PY{i:04d}" for i in range(9, -1, -1)] and "&lsaquo; newer" in last
    assert _numbers(render_index(trades, page_arg="99").body.decode()) == _numbers(last)  # past the end
    assert _numbers(render_index(trades, page_arg="x").body.decode()) == _numbers(first)
    assert "¥1,050.05" in render_index(_trades(1051), query="PY1050").body.decode()  # thousands separated


def test_search_by_payment_or_order_number_keeps_the_query_in_the_pager():
    trades = _trades(300)
    found = render_index(trades, query="py00").body.decode()
    assert _numbers(found) == [f"PY{i:04d}" for i in range(99, 99 - PAGE_SIZE, -1)]
    assert "100 pending trades" in found and "page=2&amp;q=py00" in found
    assert _numbers(render_index(trades, query="LK0123").body.decode()) == ["PY0123"]
    assert "none" in render_index(trades, query="nothing").body.decode()
    escaped = render_index(trades, query='"><script>').body.decode()
    assert "<script>" not in escaped and "&quot;&gt;&lt;script&gt;" in escaped


def test_the_index_over_http(sandbox: SandboxHandle):
    page = requests.get(f"{sandbox.base_url}/cashier/", params={"q": "nothing-like-this"}, timeout=10)
    assert page.status_code == 200 and "0 pending trades" in page.text and 'name="q"' in page.text


def test_the_sandbox_has_an_icon_so_a_browser_gets_no_404(sandbox: SandboxHandle):
    icon = requests.get(f"{sandbox.base_url}/favicon.ico", timeout=5)
    assert icon.status_code == 200 and icon.headers["Content-Type"] == "image/svg+xml"
    assert icon.content.startswith(b"<svg")
    page = requests.get(f"{sandbox.base_url}/cashier/", timeout=5).text
    assert '<link rel="icon" href="/favicon.ico"' in page


def test_numbers_on_the_cashier_are_kept_whole():
    html = render_index(_trades(2)).body.decode()
    assert "overflow-wrap:anywhere" not in html  # that broke a payment number in the middle on a phone
    assert re.search(r"code\{[^}]*white-space:nowrap", html)


def test_bill_adjustments_are_validated_shown_and_cleared(sandbox: SandboxHandle):
    set_ = sandbox.control(
        "wallyt/bills/adjust", json={"omit": ["PY1"], "fee_fen": {"PY2": 9}, "totals_delta_fen": {"fees": 1}}
    )
    assert set_["adjust"] == {"omit": ["PY1"], "fee_fen": {"PY2": 9}, "totals_delta_fen": {"fees": 1}, "account": None}
    assert sandbox.control("wallyt/bills/adjust")["adjust"]["omit"] == ["PY1"]
    with pytest.raises(requests.HTTPError, match="unknown totals"):
        sandbox.control("wallyt/bills/adjust", json={"totals_delta_fen": {"tips": 1}})
    with pytest.raises(requests.HTTPError, match="400"):
        sandbox.control("wallyt/bills/adjust", json={"fee_fen": {"PY2": "nine"}})
    sandbox.control("wallyt/bills/adjust", method="DELETE")
    assert sandbox.control("wallyt/bills/adjust")["adjust"] == {
        "omit": [],
        "fee_fen": {},
        "totals_delta_fen": {},
        "account": None,
    }
    with pytest.raises(requests.HTTPError, match="404"):
        sandbox.control("alipay/refunds/NOPE/booked", json={"success_time": "2026-05-01T10:00:00+08:00"})
