"""WeChat ABNORMAL refunds paid out to a bank card (apply-abnormal-refund, PROTOCOLS F.2): the finance action,
permission-gated and audited, never showing, storing or logging the bank account in full."""

import json
import logging

import pytest
from django.urls import reverse

from core.audit import Actor
from core.errors import GatewayRejected, ValidationFailed
from orders.models import Order
from payments.tests.flows import paid_order
from refunds.models import Refund, RefundEvent
from refunds.services import NotAllowed, refund_apply_abnormal, refund_approve, refund_request, refund_sync
from refunds.tests.test_admin_helpers import staff_in

pytestmark = pytest.mark.django_db(transaction=True)
S = Refund.Status
ACCOUNT, NAME = "6222021234567890123", "张三丰"
CARD = {"destination": "USER_BANK_CARD", "bank_type": "ICBC_DEBIT", "bank_account": ACCOUNT, "real_name": NAME}


def _abnormal(user_api, sandbox, channel="wechat_native", **extra) -> Refund:
    """A refund the gateway answered ABNORMAL (its notification applied, or asked for)."""
    order, _ = paid_order(user_api, sandbox, channel=channel, **extra)
    refund = refund_request(order_no=order["order_no"], amount_fen=None, reason="t", requested_by=user_api.user)
    refund_approve(refund_id=refund.pk, approver=staff_in("finance"), note="ok")
    gateway = channel.split("_")[0]
    sandbox.control(f"{gateway}/refunds/{refund.refund_no}/settle", json={"status": "ABNORMAL"})
    refund_sync(refund_id=refund.pk, actor=Actor.system("test"))  # (or its notification, when one is delivered)
    refund.refresh_from_db()
    assert refund.status == S.ABNORMAL
    return refund


def _post(client, refund, **fields):
    return client.post(
        reverse("admin:refunds_refund_changelist"),
        {"action": "apply_abnormal_refund", "_selected_action": [refund.pk], "confirm": "yes", **fields},
    )


def test_finance_applies_for_a_refund_to_the_customers_card(user_api, notify_to, celery_eager, client, caplog):
    caplog.set_level(logging.DEBUG)
    refund = _abnormal(user_api, notify_to)
    finance = staff_in("finance")
    client.force_login(finance)

    response = _post(client, refund, note="customer's card was cancelled", **CARD)

    assert response.status_code == 302
    refund.refresh_from_db()
    assert refund.status == S.PROCESSING
    at_gateway = notify_to.control(f"wechat/refunds/{refund.refund_no}")
    assert at_gateway["status"] == "PROCESSING" and at_gateway["extra"]["channel"] == "OTHER_BANKCARD"
    event = RefundEvent.objects.get(refund=refund, action="apply_abnormal")
    assert (event.actor, event.reason, event.from_status, event.to_status) == (
        f"staff:{finance.pk}",
        "customer's card was cancelled",
        "abnormal",
        "processing",
    )
    assert event.data == {
        "destination": "USER_BANK_CARD",
        "bank_type": "ICBC_DEBIT",
        "bank_account": "****0123",
        "real_name": "张**",
    }

    # WeChat pays it out: REFUND.SUCCESS settles it
    notify_to.control(f"wechat/refunds/{refund.refund_no}/settle", json={"status": "SUCCESS"})
    notify_to.wait_for(lambda: Refund.objects.get(pk=refund.pk).status == S.SUCCEEDED, timeout=15)
    assert Order.objects.get(pk=refund.order_id).status == "refunded"

    # the account and the name are nowhere: audit rows, gateway answers, admin pages, logs, the gateway's record
    page = client.get(reverse("admin:refunds_refund_change", args=[refund.pk])).content.decode()
    stored = json.dumps(
        [list(RefundEvent.objects.filter(refund=refund).values("data", "reason")), refund.gateway_answers],
        ensure_ascii=False,
        default=str,
    )
    gateway_record = json.dumps(notify_to.control(f"wechat/refunds/{refund.refund_no}"), ensure_ascii=False)
    for text in (page, stored, caplog.text, gateway_record):
        assert ACCOUNT not in text and NAME not in text


def test_the_card_is_checked_before_anything_is_sent_and_never_echoed(user_api, gateways, celery_eager, client):
    refund = _abnormal(user_api, gateways)
    client.force_login(staff_in("finance"))

    response = _post(client, refund, note="x", **{**CARD, "bank_account": ""})

    page = response.content.decode()
    assert response.status_code == 200 and "Required for the customer&#x27;s bank card." in page
    assert NAME not in page
    assert Refund.objects.get(pk=refund.pk).status == S.ABNORMAL
    assert gateways.control(f"wechat/refunds/{refund.refund_no}")["status"] == "ABNORMAL"
    with pytest.raises(ValidationFailed) as refused:
        refund_apply_abnormal(
            refund_id=refund.pk, staff=staff_in("finance"), note="x", **{**CARD, "bank_account": "12"}
        )
    assert set(refused.value.details) == {"bank_account"} and "12" not in refused.value.message


def test_only_finance_may_apply(user_api, gateways, celery_eager, client):
    refund = _abnormal(user_api, gateways)
    client.force_login(staff_in("support"))
    _post(client, refund, note="x", destination="MERCHANT_BANK_CARD")
    assert Refund.objects.get(pk=refund.pk).status == S.ABNORMAL
    with pytest.raises(NotAllowed):
        refund_apply_abnormal(
            refund_id=refund.pk, staff=staff_in("support"), destination="MERCHANT_BANK_CARD", note="x"
        )


def test_to_the_merchant_account_and_a_refusal_puts_it_back(user_api, gateways, celery_eager):
    first, second = _abnormal(user_api, gateways), _abnormal(user_api, gateways)
    finance = staff_in("finance")

    applied = refund_apply_abnormal(refund_id=first.pk, staff=finance, destination="MERCHANT_BANK_CARD", note="we pay")
    assert applied.status == S.PROCESSING
    assert gateways.control(f"wechat/refunds/{first.refund_no}")["extra"]["channel"] == "OTHER_BALANCE"

    # WeChat settled the second one meanwhile (its notification lost): it refuses the application
    gateways.control(f"wechat/refunds/{second.refund_no}/settle", json={"status": "SUCCESS"})
    with pytest.raises(GatewayRejected):
        refund_apply_abnormal(refund_id=second.pk, staff=finance, destination="MERCHANT_BANK_CARD", note="we pay")
    assert Refund.objects.get(pk=second.pk).status == S.ABNORMAL
    assert RefundEvent.objects.filter(refund=second, action="apply_abnormal_refused").exists()


def test_only_wechat_pays_abnormal_refunds_to_a_card(user_api, gateways, celery_eager):
    refund = _abnormal(user_api, gateways, channel="wallyt_jsapi", openid="o-mini-1")  # Wallyt CHANGE
    with pytest.raises(ValidationFailed) as refused:
        refund_apply_abnormal(
            refund_id=refund.pk, staff=staff_in("finance"), destination="MERCHANT_BANK_CARD", note="x"
        )
    assert refused.value.code == "abnormal_refund_unsupported"
