"""A refund's admin page as finance reads it: the gateway's refund id, state, amounts and times as
named fields (for every gateway, through the sandbox), the answers as indented JSON with secrets
masked, amounts in yuan."""

import json

import pytest
from django.urls import reverse

from config.audit import Actor
from payments.gateways.base import RefundState, RefundStatus
from payments.models import Payment
from payments.tests.flows import paid_order
from refunds.models import Refund
from refunds.services import refund_apply_gateway_status, refund_approve, refund_request, refund_submit, refund_sync
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


def test_alipay_refund_page_explains_the_missing_refund_id_and_masks_the_signature(user_api, gateways, client):
    refund = _refunded(user_api, gateways, "alipay_page")
    # a notification that carries the refund, with the gateway's signature in it
    refund_apply_gateway_status(
        status=RefundStatus(
            refund_no=refund.refund_no,
            state=RefundState.SUCCEEDED,
            payment_no=refund.payment.payment_no,
            gateway_state="refund_fee",
            raw={
                "notify_type": "trade_status_sync",
                "trade_status": "TRADE_SUCCESS",
                "out_biz_no": refund.refund_no,
                "refund_fee": "3.00",
                "gmt_refund": "2026-05-01 10:00:00.123",
                "sign": "SIGNATURE-SHOULD-NOT-SHOW",
                "sign_type": "RSA2",
                "app_auth_token": "TOKEN-SHOULD-NOT-SHOW",
            },
        ),
        actor=Actor.gateway("alipay"),
    )
    client.force_login(staff_in("finance"))
    fields = _fields(client, Refund.objects.get(pk=refund.pk))
    assert fields["gateway refund id"].startswith("none: Alipay gives a refund no number of its own")
    assert refund.refund_no in fields["gateway refund id"]
    assert (
        fields["state at the gateway"]
        == "succeeded: Alipay says trade_status_sync: trade TRADE_SUCCESS, refund settled"
    )
    assert "refunded so far on the trade ¥3.00" in fields["amounts the gateway gave"]
    page = fields["_page"]
    assert "SIGNATURE-SHOULD-NOT-SHOW" not in page and "TOKEN-SHOULD-NOT-SHOW" not in page
    assert "&quot;sign&quot;: &quot;[redacted]&quot;" in page and "RSA2" in page  # sign_type is no secret
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
