"""The money WeChat Pay Score collects is a payment finance sees: a ``Payment`` of channel ``wechat_payscore``
recorded when WeChat says the service order is paid, counted by the dashboard, the settlement report and the
metrics, matched by bill reconciliation (the collection's line names WeChat's own out_trade_no) and refunded
through the real SDK by ``transaction_id`` against the sandbox, settled by WeChat's notification."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.audit import Actor
from finance.backoffice.dashboard import dashboard_context
from finance.bills import bill_reconcile
from finance.metrics import scrape_registry
from finance.models import BillDiscrepancy, BillLine
from finance.settlement import settlement_report
from finance.tests.bill_days import onto_yesterday
from orders.models import Order
from orders.services import order_open_door
from payments.gateways.base import RefundState, RefundStatus
from payments.gateways.registry import get_gateway
from payments.gateways.trust import FieldMismatch
from payments.models import Payment, PaymentEvent, ServiceOrder
from payments.payscore import payscore_sync
from payments.services import payment_sync
from payments.tests.test_payscore_flow import _confirmed, _status
from refunds.models import Refund
from refunds.services import refund_apply_gateway_status, refund_approve, refund_request
from refunds.tests.test_admin_helpers import staff_in

pytestmark = pytest.mark.django_db(transaction=True)


def _paid(user_api, sandbox, *, hours: int = 5) -> ServiceOrder:
    """A Pay Score rental picked up ``hours`` - 40 min after confirmation, completed and collected."""
    order, so = _confirmed(user_api, sandbox)
    now = so.confirmed_at + timedelta(hours=hours, minutes=-40)
    order_open_door(order_no=order["order_no"], user=user_api.user, now=now)
    return _status(sandbox, so.out_order_no, "paid")


def _clean_bill(sandbox) -> None:
    """Yesterday's WeChat bill is clean (today's is not published yet: the records move onto yesterday)."""
    day = onto_yesterday(sandbox, ["wechat"])
    [run] = bill_reconcile(bill_date=day, now=timezone.now(), gateways=["wechat"], force=True)
    assert run.status == "done", run.error
    assert list(BillDiscrepancy.objects.values_list("kind", "reference")) == []


def test_a_paid_service_order_is_a_payment_finance_sees_and_refunds(user_api, notify_to, celery_eager):
    so = _paid(user_api, notify_to)

    # the collection is a payment of the order, paid through the payments transition (one audited event)
    payment = so.payment
    assert payment is not None and payment.channel == "wechat_payscore" and payment.gateway == "wechat"
    assert (payment.status, payment.amount_fen, payment.refunded_fen) == ("succeeded", so.paid_fen, 0)
    assert payment.gateway_trade_no == so.gateway_trade_no and payment.paid_at == so.paid_at
    assert payment.order_id == so.order_id and payment.out_trade_no is None
    events = list(PaymentEvent.objects.filter(payment=payment).values_list("action", "from_status", "to_status"))
    assert events == [("paid", "created", "succeeded")]
    total = so.paid_fen
    assert total > 0

    # the dashboard, the settlement report and the metrics count it
    today = timezone.localdate()
    by = settlement_report(date_from=today - timedelta(days=1), date_to=today).by_channel()
    assert by["wechat_payscore"].gross_fen == total and by["wechat_payscore"].payments == 1
    week = {w.label: w for w in dashboard_context()["windows"]}["7 days"]
    assert week.paid_fen == total
    registry = scrape_registry()
    assert registry.get_sample_value("locker_payments", {"channel": "wechat_payscore", "status": "succeeded"}) == 1

    # a sync changes nothing (WeChat knows the trade by its transaction_id, not our payment_no); WeChat's word
    # applied again (a late notification, a reconciliation) records no second payment
    assert payment_sync(payment_no=payment.payment_no, actor=Actor.system("test")).status == "succeeded"
    payscore_sync(out_order_no=so.out_order_no, actor=Actor.system("test"))
    assert Payment.objects.filter(order_id=so.order_id).count() == 1

    # the day's WeChat bill lists the collection under WeChat's own out_trade_no: matched to the payment
    _clean_bill(notify_to)
    line = BillLine.objects.get(gateway="wechat", kind="payment", gateway_trade_no=so.gateway_trade_no)
    assert (line.reference, line.amount_fen) == (payment.payment_no, total)

    # finance refunds part of it (maker-checker): sent by transaction_id, settled by WeChat's notification
    support, finance = staff_in("support"), staff_in("finance")
    order = Order.objects.get(pk=so.order_id)
    refund = refund_request(
        order_no=order.order_no, amount_fen=500, reason="door stuck", requested_by=support, source="staff"
    )
    assert refund.payment_id == payment.pk and refund.status == Refund.Status.REQUESTED
    refund = refund_approve(refund_id=refund.pk, approver=finance)
    notify_to.wait_for(lambda: Refund.objects.get(pk=refund.pk).status == "processing", timeout=15)
    at_wechat = notify_to.control(f"wechat/refunds/{refund.refund_no}")
    assert at_wechat["transaction_id"] == so.gateway_trade_no and at_wechat["out_trade_no"] != payment.payment_no
    notify_to.control(f"wechat/refunds/{refund.refund_no}/settle", json={"status": "SUCCESS"})
    notify_to.wait_for(lambda: Refund.objects.get(pk=refund.pk).status == "succeeded", timeout=15)

    payment.refresh_from_db()
    assert payment.refunded_fen == 500
    assert Order.objects.get(pk=order.pk).status == "partially_refunded"
    _clean_bill(notify_to)  # the refund's line (WeChat's out_trade_no too) is matched as well


def test_a_refund_word_about_another_trade_of_a_pay_score_payment_is_refused(user_api, notify_to, celery_eager):
    so = _paid(user_api, notify_to, hours=2)
    order = Order.objects.get(pk=so.order_id)
    refund = refund_request(
        order_no=order.order_no, amount_fen=100, reason="x", requested_by=staff_in("support"), source="staff"
    )
    refund_approve(refund_id=refund.pk, approver=staff_in("finance"))
    refund.refresh_from_db()
    assert refund.status == "processing"
    word = {
        "refund_no": refund.refund_no,
        "state": RefundState.SUCCEEDED,
        "gateway": "wechat",
        "source": "notify",
        "payment_no": "PS-any-out-trade-no",  # WeChat's own out_trade_no: not ours to check
        "amount_fen": 100,
        "total_fen": so.paid_fen,
        "merchant_id": get_gateway("wechat").identity().merchant_id,
        "currency": "CNY",
    }
    for transaction_id in ("4200000000000000000000000001", None):  # another trade's, or none at all
        with pytest.raises(FieldMismatch) as err:
            refund_apply_gateway_status(
                status=RefundStatus(**word, gateway_trade_no=transaction_id), actor=Actor.gateway("wechat")
            )
        assert err.value.check.field == "gateway_trade_no"
    assert Refund.objects.get(pk=refund.pk).status == "processing"
    assert Payment.objects.get(pk=so.payment_id).refunded_fen == 0

    # the genuine word, with its own out_trade_no, settles it
    refund_apply_gateway_status(
        status=RefundStatus(**word, gateway_trade_no=so.gateway_trade_no), actor=Actor.gateway("wechat")
    )
    assert Refund.objects.get(pk=refund.pk).status == "succeeded"
