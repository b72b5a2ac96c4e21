"""A refund's admin page as finance reads it: the gateway's refund id, state, amounts and times as
named fields (for every gateway, through the sandbox), the answers as indented JSON with secrets
masked, amounts in yuan."""

import json

import pytest
from django.urls import reverse

from config.audit import Actor
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
    import re

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
    assert fields["state at the gateway"] == "succeeded: WeChat Pay says SUCCESS"
    assert (
        fields["amounts the gateway gave"].startswith("refund ¥3.00 of ¥10.00")
        and "ours ¥3.00" in fields["amounts the gateway gave"]
    )
    assert "succeeded 20" in fields["times the gateway gave"]
    assert fields["amount"] == "¥3.00"
    page = fields["_page"]
    shown = page.split('id="bo-gateway-json">')[1].split("</pre>")[0]
    answers = json.loads(shown.replace("&quot;", '"').replace("&#x27;", "'").replace("&amp;", "&"))
    assert isinstance(answers, list) and answers[0]["state"] == "succeeded"  # latest first
    assert "\n  {\n    &quot;state&quot;" in shown  # indented JSON, not a Python dict
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
    assert fields["state at the gateway"] == (
        "succeeded: Alipay says trade_status_sync: trade TRADE_SUCCESS, refund settled"
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
    assert fields["state at the gateway"] == "succeeded: Wallyt says SUCCESS"
    assert fields["amounts the gateway gave"].startswith("refund ¥3.00")
    assert "[redacted]" in fields["_page"]  # the answer's sign


def test_a_wallet_refund_has_no_gateway_answer(client):
    from refunds.tests.test_admin_helpers import paid_wallet_order, requested_refund

    refund = requested_refund(paid_wallet_order()[0], amount_fen=150)
    client.force_login(staff_in("finance"))
    fields = _fields(client, refund)
    assert fields["gateway refund id"].startswith("none: a wallet refund")
    assert fields["what the gateway said (latest first, secrets masked)"] == "-"
    assert fields["amount"] == "¥1.50"


def test_masked_hides_every_secret_key_at_any_depth():
    from refunds.backoffice.refund_page import masked

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
