"""Refunds through each gateway in the sandbox: SUCCESS, ABNORMAL, CLOSED; lost and duplicate
notifications."""

import pytest
from django.test import Client

from conftest import run_concurrently
from core.audit import Actor
from orders.models import Order
from payments.models import GatewayNotification, Payment
from payments.tests.flows import paid_order
from refunds.models import Refund, RefundEvent
from refunds.services import refund_approve, refund_request, refund_resolve_abnormal, refund_sync
from refunds.tests.test_workflow import staff_with

pytestmark = pytest.mark.django_db(transaction=True)
S = Refund.Status


def _approved(user_api, order_no, amount_fen=None):
    refund = refund_request(order_no=order_no, amount_fen=amount_fen, reason="test", requested_by=user_api.user)
    refund_approve(refund_id=refund.pk, approver=staff_with("refunds.approve_refund"), note="ok")
    return Refund.objects.get(pk=refund.pk)


def _wait(sandbox, refund, status):
    sandbox.wait_for(lambda: Refund.objects.get(pk=refund.pk).status == status, timeout=15)
    return Refund.objects.get(pk=refund.pk)


@pytest.mark.parametrize(
    ("settle", "final", "order_status"),
    [("SUCCESS", S.SUCCEEDED, "refunded"), ("ABNORMAL", S.ABNORMAL, "paid"), ("CLOSED", S.FAILED, "paid")],
)
def test_wechat_refund_settled_by_notification(user_api, notify_to, celery_eager, settle, final, order_status):
    order, payment_no = paid_order(user_api, notify_to)
    refund = _approved(user_api, order["order_no"])
    assert refund.status == S.PROCESSING and refund.submitted_at
    assert notify_to.control(f"wechat/refunds/{refund.refund_no}")["status"] == "PROCESSING"

    notify_to.control(f"wechat/refunds/{refund.refund_no}/settle", json={"status": settle})

    refund = _wait(notify_to, refund, final)
    assert Order.objects.get(order_no=order["order_no"]).status == order_status
    payment = Payment.objects.get(payment_no=payment_no)
    assert payment.refunded_fen == (refund.amount_fen if final == S.SUCCEEDED else 0)
    assert GatewayNotification.objects.filter(reference=refund.refund_no, verified=True).exists()


def test_abnormal_refund_resolved_offline_by_finance(user_api, notify_to, celery_eager):
    order, payment_no = paid_order(user_api, notify_to)
    refund = _approved(user_api, order["order_no"], amount_fen=400)
    notify_to.control(f"wechat/refunds/{refund.refund_no}/settle", json={"status": "ABNORMAL"})
    _wait(notify_to, refund, S.ABNORMAL)

    finance = staff_with("refunds.resolve_abnormal_refund")
    refund_resolve_abnormal(refund_id=refund.pk, staff=finance, action="offline", note="bank transfer 123")

    refund.refresh_from_db()
    assert refund.status == S.SUCCEEDED
    assert Order.objects.get(order_no=order["order_no"]).status == "partially_refunded"
    assert Payment.objects.get(payment_no=payment_no).refunded_fen == 400
    event = RefundEvent.objects.filter(refund=refund).latest("id")
    assert event.actor == f"staff:{finance.pk}" and "bank transfer 123" in event.reason


def test_abnormal_refund_retried_to_the_original_route(user_api, notify_to, celery_eager):
    order, _ = paid_order(user_api, notify_to)
    refund = _approved(user_api, order["order_no"])
    notify_to.control(f"wechat/refunds/{refund.refund_no}/settle", json={"status": "ABNORMAL"})
    _wait(notify_to, refund, S.ABNORMAL)
    # the bank account is fixed and the gateway pays the refund out, but its notification is lost
    notify_to.fault("wechat.notify", "drop", count=-1)
    notify_to.control(f"wechat/refunds/{refund.refund_no}/settle", json={"status": "SUCCESS"})

    refund_resolve_abnormal(
        refund_id=refund.pk, staff=staff_with("refunds.resolve_abnormal_refund"), action="retry", note="card reissued"
    )

    # the retry re-submits the same out_refund_no: the gateway answers with its current state
    assert Refund.objects.get(pk=refund.pk).status == S.SUCCEEDED
    assert Order.objects.get(order_no=order["order_no"]).status == "refunded"
    assert len(notify_to.control("wechat/refunds")["refunds"]) == 1  # the same out_refund_no, never twice
    assert RefundEvent.objects.filter(refund=refund, action="retry", reason="card reissued").exists()


def test_lost_refund_notification_is_healed_by_query(user_api, gateways, celery_eager):
    order, _ = paid_order(user_api, gateways)
    refund = _approved(user_api, order["order_no"])
    gateways.fault("wechat.notify", "drop")
    gateways.control(f"wechat/refunds/{refund.refund_no}/settle", json={"status": "SUCCESS"})
    assert Refund.objects.get(pk=refund.pk).status == S.PROCESSING

    refund_sync(refund_id=refund.pk, actor=Actor.system("test"))

    assert Refund.objects.get(pk=refund.pk).status == S.SUCCEEDED
    assert Order.objects.get(order_no=order["order_no"]).status == "refunded"


def test_duplicate_refund_notifications_make_one_transition(user_api, gateways, celery_eager):
    order, payment_no = paid_order(user_api, gateways)
    refund = _approved(user_api, order["order_no"])
    gateways.control(f"wechat/refunds/{refund.refund_no}/settle", json={"status": "SUCCESS"})
    delivery = gateways.wait_for(
        lambda: [d for d in gateways.notifications(out_refund_no=refund.refund_no) if d["attempts"]]
    )[0]
    attempt_headers = delivery.get("last_headers") or None
    body = delivery["body"].encode()
    # re-sign the very same body as the platform would on a retry
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from sandbox.wechat_crypto import signed_headers

    key = load_pem_private_key(gateways.read("wechat/platform_private_key.pem").encode(), None)
    assert attempt_headers is None or attempt_headers
    headers = signed_headers(key, gateways.credentials["wechat"]["public_key_id"], body)
    meta = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}

    responses = run_concurrently(
        lambda: Client().post("/api/v1/payments/notify/wechat/", data=body, content_type="application/json", **meta),
        args_list=[()] * 5,
    )

    assert [r.status_code for r in responses] == [204] * 5
    assert RefundEvent.objects.filter(refund=refund, action="succeed").count() == 1
    assert Payment.objects.get(payment_no=payment_no).refunded_fen == refund.amount_fen


def test_alipay_refund_is_synchronous(user_api, gateways, celery_eager):
    order, payment_no = paid_order(user_api, gateways, channel="alipay_page")
    refund = _approved(user_api, order["order_no"], amount_fen=300)
    assert Refund.objects.get(pk=refund.pk).status == S.SUCCEEDED
    assert Order.objects.get(order_no=order["order_no"]).status == "partially_refunded"
    assert Payment.objects.get(payment_no=payment_no).refunded_fen == 300


@pytest.mark.parametrize(
    ("settle", "final"), [("SUCCESS", S.SUCCEEDED), ("ABNORMAL", S.ABNORMAL), ("CLOSED", S.FAILED)]
)
def test_wallyt_refund_settled_and_found_by_query(user_api, gateways, celery_eager, settle, final):
    order, _ = paid_order(user_api, gateways, channel="wallyt_jsapi", openid="o-mini")
    refund = _approved(user_api, order["order_no"])
    assert Refund.objects.get(pk=refund.pk).status == S.PROCESSING
    gateways.control(f"wallyt/refunds/{refund.refund_no}/settle", json={"status": settle})
    refund_sync(refund_id=refund.pk, actor=Actor.system("test"))
    assert Refund.objects.get(pk=refund.pk).status == final


def test_gateway_outage_during_submission_is_retried_not_duplicated(user_api, gateways, celery_eager):
    from refunds.services import refund_submit

    order, _ = paid_order(user_api, gateways)
    gateways.fault("wechat.refund", "timeout", ms=200, apply=True)  # the gateway takes it, the answer is lost
    refund = refund_request(order_no=order["order_no"], amount_fen=None, reason="x", requested_by=user_api.user)
    refund_approve(refund_id=refund.pk, approver=staff_with("refunds.approve_refund"))
    assert Refund.objects.get(pk=refund.pk).status == S.PROCESSING  # submitted, answer unknown
    refund_submit(refund_id=refund.pk)  # the retry: same out_refund_no
    assert len(gateways.control("wechat/refunds")["refunds"]) == 1
    assert Refund.objects.get(pk=refund.pk).status == S.PROCESSING
