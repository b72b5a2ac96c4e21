"""A refund's admin page as finance reads it: the gateway's refund id, state, amounts and times as
named fields (for every gateway, through the sandbox), the answers as indented JSON with secrets
masked, amounts in yuan."""

import json
import re

import pytest
from django.urls import reverse

from core.audit import Actor
from payments.models import Payment
from payments.tests.flows import paid_order
from refunds.models import Refund
from refunds.services import refund_approve, refund_request, refund_submit, refund_sync
from refunds.tests.test_admin_helpers import staff_in

pytestmark = pytest.mark.django_db


def _refunded(user_api, sandbox, channel: str, **extra) -> Refund:
    order, payment_no = paid_order(user_api, sandbox, channel, **extra)
    refund = refund_request(order_no=order["order_no"], amount_fen=300, reason="door", requested_by=user_api.user)
    refund_approve(refund_id=refund.pk, approver=staff_in("finance"), note="ok")
    refund_submit(refund_id=refund.pk)
    gateway = Payment.objects.get(payment_no=payment_no).gateway
    if gateway != "alipay":  # Alipay settles within the call
        sandbox.control(f"{gateway}/refunds/{refund.refund_no}/settle", json={"status": "SUCCESS"})
        refund_sync(refund_id=refund.pk, actor=Actor.system("test"))
    refund = Refund.objects.get(pk=refund.pk)
    assert refund.status == "succeeded"
    return refund


def _fields(client, refund: Refund) -> dict[str, str]:
    """The page's read-only fields by label (text only)."""

    page = client.get(reverse("admin:refunds_refund_change", args=[refund.pk])).content.decode()
    found = {}
    for label, value in re.findall(r"<label>([^<]+):</label>\s*<div class=\"readonly\">(.*?)</div>", page, re.DOTALL):
        found[label.strip().lower()] = re.sub(r"<[^>]+>", "", value).strip()
    found["_page"] = page
    return found


def test_wechat_refund_page_names_what_the_gateway_said(user_api, gateways, client):
    refund = _refunded(user_api, gateways, "wechat_native")
    client.force_login(staff_in("finance"))
    fields = _fields(client, refund)
    assert fields["gateway refund id"] == refund.gateway_refund_id and refund.gateway_refund_id.startswith("50")
    assert fields["state at the gateway"] == "Succeeded: WeChat Pay says SUCCESS"
    assert (
        fields["amounts the gateway gave"].startswith("refund ¥3.00 of ¥10.00")
        and "ours ¥3.00" in fields["amounts the gateway gave"]
    )
    # the gateway's RFC 3339 times, shown as every time on the page is: TIME_ZONE, with its name
    assert re.fullmatch(
        r"created \d{4}-\d\d-\d\d \d\d:\d\d:\d\d CST, succeeded \d{4}-\d\d-\d\d \d\d:\d\d:\d\d CST",
        fields["times the gateway gave"],
    ), fields["times the gateway gave"]
    assert fields["amount"] == "¥3.00"
    page = fields["_page"]
    shown = page.split('id="bo-gateway-json">')[1].split("</pre>")[0]
    answers = json.loads(shown.replace("&quot;", '"').replace("&#x27;", "'").replace("&amp;", "&"))
    assert isinstance(answers, list) and answers[0]["status"] == "SUCCESS"  # latest first
    # the gateway's own fields only (our code's "state" is the refund's status), in alphabetical order
    assert all("state" not in answer and list(answer) == sorted(answer) for answer in answers)
    assert shown.startswith("[\n  {\n    &quot;") and "\n  {\n    &quot;amount&quot;" in shown  # indented
    assert "{'" not in page.split("At the gateway")[1]


def test_alipay_refund_page_names_the_refund_by_trade_and_request_number(user_api, notify_to, client):
    refund = _refunded(user_api, notify_to, "alipay_page")
    # Alipay then notifies the refund (trade_status_sync with refund_fee), signed: it reaches our webhook
    notify_to.wait_for(
        lambda: any("notify_type" in a for a in Refund.objects.get(pk=refund.pk).gateway_answers), timeout=15
    )
    refund = Refund.objects.get(pk=refund.pk)
    client.force_login(staff_in("finance"))
    fields = _fields(client, refund)
    # Alipay gives a refund no number of its own: the adapter names it by trade and our out_request_no
    assert fields["gateway refund id"] == refund.gateway_refund_id and refund.refund_no in refund.gateway_refund_id
    # the last word recorded names the state: the notification, or the refund call's answer when its task
    # commits after the notification was applied (the sandbox notifies as it answers): both say settled
    assert fields["state at the gateway"] in (
        "Succeeded: Alipay says trade_status_sync: trade TRADE_SUCCESS, refund settled",
        "Succeeded: Alipay says fund_change Y (money moved)",
    )
    assert "refunded so far on the trade ¥3.00" in fields["amounts the gateway gave"]
    page = fields["_page"]
    assert "trade_status_sync" in page.split('id="bo-gateway-json">')[1]  # the notification, as JSON
    assert "Gateway state" not in page  # the raw column (refund_fee) is no longer shown as the state


def test_wallyt_refund_page(user_api, gateways, client):
    refund = _refunded(user_api, gateways, "wallyt_jsapi", openid="o-page")
    client.force_login(staff_in("finance"))
    fields = _fields(client, refund)
    assert fields["gateway refund id"] == refund.gateway_refund_id != ""
    assert fields["state at the gateway"] == "Succeeded: Wallyt says SUCCESS"
    assert fields["amounts the gateway gave"].startswith("refund ¥3.00")
    assert "[redacted]" in fields["_page"]  # the answer's sign
    # Wallyt writes times as 20261130101653 (China Standard Time): shown as the page shows times
    assert re.fullmatch(r"refund time \d{4}-\d\d-\d\d \d\d:\d\d:\d\d CST", fields["times the gateway gave"])


def test_a_wallet_refund_has_no_gateway_answer(client):
    from refunds.tests.test_admin_helpers import paid_wallet_order, requested_refund

    refund = requested_refund(paid_wallet_order()[0], amount_fen=150)
    client.force_login(staff_in("finance"))
    fields = _fields(client, refund)
    assert fields["gateway refund id"].startswith("none: a wallet refund")
    assert fields["what the gateway said (latest first, secrets masked)"] == "-"
    assert fields["amount"] == "¥1.50"
    # never "(no answer from the wallet yet)": the wallet is ours, there is no gateway to answer
    assert fields["state at the gateway"] == "Requested: no gateway (a wallet refund is credited to the wallet here)"
    assert fields["amounts the gateway gave"] == "ours ¥1.50, credited to the wallet"


def test_a_rejected_refund_says_who_rejected_it_and_that_it_was_never_sent(client):
    from refunds.services import refund_reject
    from refunds.tests.test_admin_helpers import paid_wechat_order, requested_refund

    finance = staff_in("finance", username="finance-rejects")
    refund = requested_refund(paid_wechat_order()[0], amount_fen=150)
    refund_reject(refund_id=refund.pk, approver=finance, note="used in full")
    client.force_login(finance)
    fields = _fields(client, refund)
    assert re.fullmatch(r"Rejected by finance-rejects at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d CST", fields["decision"]), (
        fields["decision"]
    )
    assert (
        "approved by" not in fields
        and "Approved" not in fields["_page"].split("Decision")[1].split("At the gateway")[0]
    )
    assert fields["state at the gateway"] == "not sent to WeChat Pay (rejected, never sent)"
    assert fields["gateway refund id"] == "none: not sent to WeChat Pay"
    assert "no answer from" not in fields["_page"]


def test_gateway_times_are_read_in_each_gateways_format():
    from datetime import UTC, datetime

    from refunds.refund_page import gateway_time

    expected = datetime(2026, 11, 30, 2, 16, 53, tzinfo=UTC)
    assert gateway_time("2026-11-30T10:16:53+08:00") == expected  # WeChat
    assert gateway_time("2026-11-30 10:16:53") == expected  # Alipay, China Standard Time
    assert gateway_time("2026-11-30 10:16:53.320") == expected.replace(microsecond=320_000)  # Alipay gmt_refund
    assert gateway_time("20261130101653") == expected  # Wallyt
    assert gateway_time("soon") is None and gateway_time("") is None


def test_masked_hides_every_secret_key_at_any_depth():
    from core.logging import masked

    answer = {
        "sign": "S1",
        "sign_type": "RSA2",
        "nested": {"paySign": "S2", "app_auth_token": "T", "amount": {"refund": 100}},
        "list": [{"api_key": "K", "refund_id": "50"}],
    }
    assert masked(answer) == {
        "sign": "[redacted]",
        "sign_type": "RSA2",
        "nested": {"paySign": "[redacted]", "app_auth_token": "[redacted]", "amount": {"refund": 100}},
        "list": [{"api_key": "[redacted]", "refund_id": "50"}],
    }
