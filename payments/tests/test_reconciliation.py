"""Beat jobs for unpaid orders, against the sandbox with faults: in the end every order is in a
terminal state that matches the gateway."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conftest import run_concurrently
from lockers.models import Compartment
from orders.models import Order
from payments.models import Payment, PaymentEvent
from payments.reconciliation import EXPIRY, payments_due, reconcile_payments, reconcile_payments_batch
from payments.services import payment_expire
from payments.tests.flows import pay, rental
from refunds.models import Refund
from refunds.reconciliation import reconcile_refunds
from refunds.services import refund_submit

pytestmark = pytest.mark.django_db(transaction=True)


def _started(user_api, channel="wechat_native"):
    order = rental(user_api)
    payment = pay(user_api, order["order_no"], channel)
    assert payment.status_code == 201, payment.content
    return Order.objects.get(order_no=order["order_no"]), payment.json()["payment_no"]


def test_tiers_decide_what_is_due(user_api, gateways):
    order, payment_no = _started(user_api)
    payment = Payment.objects.get(payment_no=payment_no)
    now = timezone.now()
    assert payment in payments_due(now)  # never synced
    Payment.objects.filter(pk=payment.pk).update(last_synced_at=now)
    assert payment not in payments_due(now + timedelta(seconds=59))
    assert payment in payments_due(now + timedelta(seconds=61))  # young: every minute
    Payment.objects.filter(pk=payment.pk).update(created_at=now - timedelta(minutes=30), last_synced_at=now)
    Order.objects.filter(pk=order.pk).update(expires_at=now + timedelta(hours=2))
    assert payment not in payments_due(now + timedelta(minutes=9))
    assert payment in payments_due(now + timedelta(minutes=11))  # 10 min to 1 h: every 10 minutes


def test_after_the_jobs_every_order_matches_the_gateway(user_api, gateways):
    # given four pending payments with the notifications lost and the gateway flaky:
    paid, paid_no = _started(user_api)  # paid at the gateway, notification dropped
    gateways.fault("wechat.notify", "drop", count=-1)
    gateways.control(f"wechat/transactions/{paid_no}/pay", json={})
    unpaid, unpaid_no = _started(user_api)  # never paid: must be closed at expiry
    late, late_no = _started(user_api)  # paid at the gateway just before expiry
    gateways.control(f"wechat/transactions/{late_no}/pay", json={})
    flaky, flaky_no = _started(user_api)  # unpaid, the gateway times out / fails at first
    gateways.fault("wechat.query", "http_500", count=1)
    gateways.fault("wechat.close", "timeout", count=1, ms=300)
    now = timezone.now()
    Order.objects.filter(pk__in=[unpaid.pk, late.pk, flaky.pk]).update(expires_at=now - timedelta(minutes=1))

    # when the job runs (and runs again a minute later, as beat would)
    first = reconcile_payments(now=now)
    reconcile_payments(now=now + timedelta(minutes=2))

    # then every order is terminal and matches what the gateway says
    assert first["payments"] == 4
    assert Order.objects.get(pk=paid.pk).status == "paid"
    assert Order.objects.get(pk=late.pk).status == "paid"
    for order, payment_no in ((unpaid, unpaid_no), (flaky, flaky_no)):
        assert Order.objects.get(pk=order.pk).status == "cancelled"
        assert Payment.objects.get(payment_no=payment_no).status == "closed"
        assert gateways.control(f"wechat/transactions/{payment_no}")["wire"]["trade_state"] == "CLOSED"
        assert Compartment.objects.get(pk=order.compartment_id).status == "free"
    assert not payments_due(now + timedelta(hours=3)).exists()


def test_expired_order_without_payment_is_cancelled(user_api, gateways):
    order = Order.objects.get(order_no=rental(user_api)["order_no"])
    result = reconcile_payments(now=order.expires_at + timedelta(seconds=1))
    assert result["orders_cancelled"] == 1
    assert Order.objects.get(pk=order.pk).status == "cancelled"
    assert Compartment.objects.get(pk=order.compartment_id).status == "free"


def test_late_payment_after_local_expiry_is_refunded_automatically(user_api, notify_to, celery_eager):
    # given an order that expired and was closed here, but whose buyer still paid at the gateway
    order, payment_no = _started(user_api)
    Payment.objects.filter(payment_no=payment_no).update(status="closed")  # closed locally only (crash)
    Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    reconcile_payments(now=timezone.now())  # the order is cancelled, its compartment released
    assert Order.objects.get(pk=order.pk).status == "cancelled"

    # when the money arrives anyway (notification)
    notify_to.control(f"wechat/transactions/{payment_no}/pay", json={})
    notify_to.wait_for(lambda: Payment.objects.get(payment_no=payment_no).status == "succeeded")

    # then it is recorded, flagged and refunded in full by the system, all audited
    payment = Payment.objects.get(payment_no=payment_no)
    assert payment.flag == "late_payment"
    assert Order.objects.get(pk=order.pk).status == "cancelled"
    refund = notify_to.wait_for(lambda: Refund.objects.filter(payment=payment).first())
    assert refund.source == "system" and refund.amount_fen == payment.amount_fen
    assert refund.status in ("approved", "processing")  # approved automatically, no finance step
    refund_submit(refund_id=refund.pk)  # what the worker runs (idempotent if it already did)
    notify_to.control(f"wechat/refunds/{refund.refund_no}/settle", json={"status": "SUCCESS"})
    notify_to.wait_for(lambda: Refund.objects.get(pk=refund.pk).status == "succeeded")
    assert Payment.objects.get(pk=payment.pk).refunded_fen == payment.amount_fen
    assert PaymentEvent.objects.filter(payment=payment, action="paid", data__flag="late_payment").exists()


def test_double_payment_is_refunded_automatically(user_api, gateways, celery_eager):
    from core.audit import Actor
    from payments.services import payment_sync

    # given payment A paid at the gateway but closed here before we knew (its notification lost)
    order, first_no = _started(user_api)
    gateways.control(f"wechat/transactions/{first_no}/pay", json={})
    Payment.objects.filter(payment_no=first_no).update(status="closed")
    # and the same order then paid by payment B
    second_no = pay(user_api, order.order_no, "wechat_h5").json()["payment_no"]
    gateways.control(f"wechat/transactions/{second_no}/pay", json={})
    payment_sync(payment_no=second_no, actor=Actor.system("t"))
    assert Order.objects.get(pk=order.pk).status == "paid"

    # when A's money is found (the reconciliation job or a late notification)
    payment_sync(payment_no=first_no, actor=Actor.system("t"))
    reconcile_refunds(now=timezone.now())  # idempotent with the immediate trigger

    # then A is kept, flagged, and refunded once in full; the order keeps B
    first = Payment.objects.get(payment_no=first_no)
    assert (first.status, first.flag) == ("succeeded", "double_payment")
    refund = Refund.objects.get(payment=first)
    assert refund.source == "system" and refund.amount_fen == first.amount_fen and refund.status == "processing"
    assert Order.objects.get(pk=order.pk).status == "paid"


def _double_payment(order, payment_no: str) -> Payment:
    """A second payment of ``order`` recorded succeeded and flagged, that the gateway never heard of."""
    return Payment.objects.create(
        payment_no=payment_no,
        order=order,
        channel="wechat_native",
        amount_fen=order.amount_fen,
        status="succeeded",
        flag="double_payment",
        paid_at=timezone.now(),
    )


def test_a_failed_automatic_refund_is_not_retried_in_a_loop(user_api, gateways, celery_eager):
    order, _ = _started(user_api)
    ghost = _double_payment(order, "PYGHOST0000000000001")  # the gateway never heard of it
    reconcile_refunds(now=timezone.now())
    reconcile_refunds(now=timezone.now())
    assert list(Refund.objects.filter(payment=ghost).values_list("status", flat=True)) == ["failed"]


def test_the_task_sent_for_a_flagged_payment_refunds_that_payment_only(user_api, gateways):
    from refunds.tasks import refund_flagged_payment_task

    flagged = [_double_payment(_started(user_api)[0], f"PYFLAGGED00000000000{i}") for i in range(2)]

    refund_flagged_payment_task(flagged[1].pk)  # what the worker runs for the task sent when it was flagged

    assert not Refund.objects.filter(payment=flagged[0]).exists()  # left to the beat job
    assert Refund.objects.get(payment=flagged[1]).source == "system"
    refund_flagged_payment_task(flagged[1].pk)  # sent twice: refunded once
    assert Refund.objects.filter(payment=flagged[1]).count() == 1


def test_two_workers_do_no_double_work(user_api, gateways):
    payments = [_started(user_api)[1] for _ in range(6)]
    now = timezone.now()
    from payments.reconciliation import reconcile_payments_batch

    reports = run_concurrently(lambda: reconcile_payments_batch(now=now, size=4), args_list=[(), ()])

    assert sorted(r.claimed for r in reports) == [2, 4]  # shared, never the same row twice
    queried = [r for r in gateways.control("wechat/transactions")["transactions"] if r["out_trade_no"] in payments]
    assert len(queried) == 6


def test_a_jobs_batches_walk_forward_by_id(user_api, gateways):
    # each batch claims only rows after the previous batch's last one: it never steps again over the rows
    # the earlier batches closed (dead entries of the open-payments index until VACUUM: N squared at 100k)
    orders = [_started(user_api)[0] for _ in range(5)]
    now = max(order.expires_at for order in orders) + timedelta(minutes=1)
    ids = sorted(Payment.objects.filter(order__in=orders).values_list("id", flat=True))

    first = reconcile_payments_batch(now=now, size=2)
    second = reconcile_payments_batch(now=now, size=2, after_id=ids[3])
    with CaptureQueriesContext(connection) as captured:
        result = reconcile_payments(now=now, size=2)

    assert (first.claimed, first.last_id) == (2, ids[1])
    assert (second.claimed, second.last_id) == (1, ids[4])  # ids[2] and ids[3] lie behind: not this batch's
    assert result["payments"] == 2 and result["closed"] == 2  # the job, from the start, finds the two left
    claims = [q["sql"] for q in captured.captured_queries if "SKIP LOCKED" in q["sql"]]
    assert f'"payments_payment"."id" > {ids[3]}' in claims[1], claims[1]  # the second batch starts past the first
    assert not payments_due(now + timedelta(minutes=2)).exists()


def test_processing_refund_is_polled_and_applied(user_api, gateways, celery_eager):
    from payments.tests.flows import paid_order
    from refunds.services import refund_approve, refund_request
    from refunds.tests.test_workflow import staff_with

    order, _ = paid_order(user_api, gateways)
    refund = refund_request(order_no=order["order_no"], amount_fen=None, reason="x", requested_by=user_api.user)
    refund_approve(refund_id=refund.pk, approver=staff_with("refunds.approve_refund"))
    gateways.fault("wechat.notify", "drop", count=-1)
    gateways.control(f"wechat/refunds/{refund.refund_no}/settle", json={"status": "SUCCESS"})

    reconcile_refunds(now=timezone.now() + timedelta(minutes=2))

    assert Refund.objects.get(pk=refund.pk).status == "succeeded"
    assert Order.objects.get(order_no=order["order_no"]).status == "refunded"


def test_beat_schedule_loads_into_django_celery_beat():
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler

    from config.celery import app

    DatabaseScheduler(app=app)  # what `celery beat --scheduler ...DatabaseScheduler` does at start
    tasks = dict(PeriodicTask.objects.values_list("name", "task"))
    assert tasks["reconcile-payments"] == "payments.reconcile_payments"
    assert tasks["reconcile-refunds"] == "refunds.reconcile_refunds"
    assert tasks["reconcile-bills"] == "refunds.reconcile_bill"


def test_management_commands_report_what_they_did(user_api, gateways):
    import io

    from django.core.management import call_command

    order = Order.objects.get(order_no=rental(user_api)["order_no"])
    out = io.StringIO()
    call_command("reconcile_payments", now=(order.expires_at + timedelta(seconds=1)).isoformat(), stdout=out)
    assert "orders_cancelled=1" in out.getvalue()
    assert Order.objects.get(pk=order.pk).status == "cancelled"
    out = io.StringIO()
    call_command("reconcile_refunds", stdout=out)
    assert "refunds=0" in out.getvalue() and "stuck=0" in out.getvalue()
    with pytest.raises(Exception, match="ISO"):
        call_command("reconcile_payments", now="yesterday")


def test_expiry_closes_payment_and_cancels_order_in_one_transaction(user_api, gateways):
    # A regression guard on reconciliation's per-payment cost (it was 18 statements in 2 transactions):
    # after the gateway's close, the payment, its order and the compartment change in ONE transaction.
    order, payment_no = _started(user_api)
    now = order.expires_at + timedelta(minutes=1)
    with CaptureQueriesContext(connection) as captured:
        report = reconcile_payments_batch(now=now)
    assert (report.claimed, report.closed, report.errors) == (1, 1, 0)
    sql = [q["sql"].split(" ", 1)[0].upper() for q in captured.captured_queries]
    claim, load, rest = sql[:4], sql[4], sql[5:]
    assert claim == ["BEGIN", "SELECT", "UPDATE", "COMMIT"] and load == "SELECT"
    assert rest.count("BEGIN") == rest.count("COMMIT") == 1, rest
    assert len(rest) <= 16, rest

    order.refresh_from_db()
    payment = Payment.objects.get(payment_no=payment_no)
    assert (payment.status, order.status) == ("closed", "cancelled")
    assert Compartment.objects.get(pk=order.compartment_id).status == "free"
    assert gateways.control(f"wechat/transactions/{payment_no}")["wire"]["trade_state"] == "CLOSED"
    assert PaymentEvent.objects.filter(payment=payment, action="close", actor="system:expiry").count() == 1
    assert order.events.filter(action="cancel", reason="expired unpaid").count() == 1


def test_expiry_leaves_an_order_waiting_for_another_payment_alone(user_api, gateways):
    # the job claimed the payment; meanwhile the user closed it and started another one on the order
    order, payment_no = _started(user_api)
    now = order.expires_at + timedelta(minutes=1)
    claimed = payments_due(now).get(payment_no=payment_no)
    Payment.objects.filter(pk=claimed.pk).update(status="closed")
    other = Payment.objects.create(payment_no="PYOTHER0001", order=order, channel="wallyt_jsapi", amount_fen=1)

    payment_expire(payment=claimed, now=now, actor=EXPIRY)

    order.refresh_from_db()
    assert order.status == "pending_payment"  # it waits for the other payment
    assert Payment.objects.get(pk=other.pk).status == "created"
    assert not PaymentEvent.objects.filter(payment=claimed).filter(action="close").exists()  # closed before
