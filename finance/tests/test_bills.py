"""Daily bill reconciliation end to end: real payments and refunds through the sandbox over HTTP,
the gateways' bills downloaded by the real adapters, every discrepancy kind classified."""

import datetime as dt
import hashlib
import re
from io import StringIO

import pytest
import requests
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.audit import Actor
from core.errors import ValidationFailed
from finance.bills import SHANGHAI, Finding, _record, bill_reconcile, yesterday
from finance.models import BillDiscrepancy, BillDiscrepancyEvent, BillLine, BillRun
from finance.tests.factories import BillDiscrepancyFactory
from payments.models import Payment
from payments.services import payment_sync
from payments.tests.flows import pay, rental
from refunds.models import Refund
from refunds.services import refund_approve, refund_request, refund_submit, refund_sync
from refunds.tests.test_workflow import staff_with

pytestmark = pytest.mark.django_db
K = BillDiscrepancy.Kind
S = BillDiscrepancy.Status
SYSTEM = Actor.system("test")


def _day(days_ago: int = 10) -> dt.date:
    return dt.datetime.now(SHANGHAI).date() - dt.timedelta(days=days_ago)


def _at(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute, second), tzinfo=SHANGHAI)


def _morning_after(day: dt.date) -> dt.datetime:
    return _at(day + dt.timedelta(days=1), 9)


def paid_at(user_api, sandbox, when: dt.datetime, channel="wechat_native", sync=True, **extra) -> str:
    """A rental paid at the gateway at ``when`` (its success_time); applied here by a sync unless not.
    ``extra`` goes with the payment request (``openid`` for a mini-program channel)."""
    order = rental(user_api)
    started = pay(user_api, order["order_no"], channel, **extra)
    assert started.status_code == 201, started.content
    payment_no = started.json()["payment_no"]
    if channel.startswith("alipay"):
        requests.get(started.json()["pay_url"], timeout=10)  # the payer opens the cashier
    gateway = channel.split("_")[0]
    sandbox.control(f"{gateway}/transactions/{payment_no}/pay", json={"success_time": when.isoformat()})
    if sync:
        payment_sync(payment_no=payment_no, actor=SYSTEM)
        assert Payment.objects.get(payment_no=payment_no).status == "succeeded"
    return payment_no


def refunded_at(user_api, sandbox, payment_no: str, when: dt.datetime, amount_fen=100, sync=True) -> Refund:
    """A partial refund the gateway settles at ``when``; applied here by a sync unless not."""
    payment = Payment.objects.select_related("order").get(payment_no=payment_no)
    refund = refund_request(
        order_no=payment.order.order_no, amount_fen=amount_fen, reason="test", requested_by=user_api.user
    )
    refund_approve(refund_id=refund.pk, approver=staff_with("refunds.approve_refund"), note="ok")
    refund_submit(refund_id=refund.pk)
    sandbox.control(
        f"{payment.gateway}/refunds/{refund.refund_no}/settle",
        json={"status": "SUCCESS", "success_time": when.isoformat()},
    )
    if sync:
        refund_sync(refund_id=refund.pk, actor=SYSTEM)
    return Refund.objects.get(pk=refund.pk)


def local_only_payment(template_no: str, when: dt.datetime) -> str:
    """A succeeded payment the gateway never saw (on the order of ``template_no``)."""
    template = Payment.objects.get(payment_no=template_no)
    payment_no = "LOCAL" + hashlib.sha1(when.isoformat().encode()).hexdigest()[:12]
    Payment.objects.create(
        payment_no=payment_no,
        order=template.order,
        channel=template.channel,
        status=Payment.Status.SUCCEEDED,
        amount_fen=777,
        paid_at=when,
        flag="double_payment",
    )
    return payment_no


def found(**filters) -> dict[str, tuple[str, str]]:
    """Discrepancies by reference; the day's settlement totals only when asked for by kind."""
    rows = BillDiscrepancy.objects.filter(**filters)
    if "kind" not in filters:
        rows = rows.exclude(kind=K.TOTAL_MISMATCH)
    return {d.reference: (d.kind, d.status) for d in rows}


def reconcile(day: dt.date, now: dt.datetime | None = None, **kwargs) -> list[BillRun]:
    return bill_reconcile(bill_date=day, now=now or _morning_after(day), gateways=["wechat"], **kwargs)


def test_a_bill_with_every_discrepancy_type_is_classified(user_api, gateways):
    day = _day()
    # given: one of each case on one day
    ok = paid_at(user_api, gateways, _at(day, 9))
    ok_refund = refunded_at(user_api, gateways, ok, _at(day, 16))
    not_applied = paid_at(user_api, gateways, _at(day, 11), sync=False)  # notification lost, never synced
    gateway_never_had = local_only_payment(ok, _at(day, 12))
    amount_drift = paid_at(user_api, gateways, _at(day, 13))
    Payment.objects.filter(payment_no=amount_drift).update(amount_fen=1)
    status_drift = paid_at(user_api, gateways, _at(day, 14))
    Payment.objects.filter(payment_no=status_drift).update(status=Payment.Status.FAILED)
    refund_drift = refunded_at(user_api, gateways, ok, _at(day, 17), sync=False)  # we still say processing
    # when
    [run] = reconcile(day)
    # then
    assert run.status == BillRun.Status.DONE, run.error
    assert found(gateway="wechat") == {
        not_applied: (K.MISSING_LOCAL, S.OPEN),
        gateway_never_had: (K.MISSING_REMOTE, S.OPEN),
        amount_drift: (K.AMOUNT_MISMATCH, S.OPEN),
        status_drift: (K.STATUS_MISMATCH, S.OPEN),
        refund_drift.refund_no: (K.STATUS_MISMATCH, S.OPEN),
    }
    assert ok not in found() and ok_refund.refund_no not in found()
    d = BillDiscrepancy.objects.get(reference=amount_drift)
    assert (d.our_amount_fen, d.their_amount_fen, d.bill_date) == (
        1,
        Payment.objects.get(payment_no=ok).amount_fen,
        day,
    )
    d = BillDiscrepancy.objects.get(reference=refund_drift.refund_no)
    assert (d.subject, d.our_status, d.their_status) == ("refund", "processing", "succeeded")
    d = BillDiscrepancy.objects.get(reference=not_applied)
    assert (d.our_status, d.their_status) == ("pending", "succeeded")
    assert run.counts["bill_payments"] == 4 and run.counts["bill_refunds"] == 2
    assert run.counts[K.MISSING_REMOTE] == 1 and run.counts[K.STATUS_MISMATCH] == 2
    # and the day's totals say by how much: gross and refunds (so net) differ, the fees do not
    price = Payment.objects.get(payment_no=ok).amount_fen
    totals = {d.reference: d for d in BillDiscrepancy.objects.filter(kind=K.TOTAL_MISMATCH)}
    assert set(totals) == {f"{day}:gross", f"{day}:refunds", f"{day}:net"}
    gross = totals[f"{day}:gross"]
    # ours counts what the bill lists and we settled (ok, amount_drift at 1 fen) plus what it lacks (777)
    assert (gross.our_amount_fen, gross.their_amount_fen) == (price + 1 + 777, 4 * price)
    refunds = totals[f"{day}:refunds"]
    assert (refunds.our_amount_fen, refunds.their_amount_fen) == (100, 200)
    assert run.totals["bill"]["fees"] == run.totals["ours"]["fees"] == run.totals["lines"]["fees"] > 0


def test_rerun_is_idempotent_and_resolves_what_disappeared(user_api, gateways):
    day = _day()
    ok = paid_at(user_api, gateways, _at(day, 9))
    drift = paid_at(user_api, gateways, _at(day, 10))
    Payment.objects.filter(payment_no=drift).update(amount_fen=5)
    reconcile(day)
    first = BillDiscrepancy.objects.get(reference=drift)

    again = reconcile(day, now=_morning_after(day) + dt.timedelta(hours=1))
    assert again == []  # done runs are not redone unless forced
    [run] = reconcile(day, now=_morning_after(day) + dt.timedelta(hours=1), force=True)

    assert run.attempts == 2 and len(found()) == 1
    assert set(found(kind=K.TOTAL_MISMATCH)) == {f"{day}:gross", f"{day}:net"}
    d = BillDiscrepancy.objects.get(reference=drift)
    assert d.pk == first.pk and d.first_seen == first.first_seen and d.last_seen > first.last_seen
    assert BillLine.objects.filter(gateway="wechat", bill_date=day).count() == 2
    # the drift is fixed: the next run resolves it with a note
    Payment.objects.filter(payment_no=drift).update(amount_fen=Payment.objects.get(payment_no=ok).amount_fen)
    reconcile(day, now=_morning_after(day) + dt.timedelta(hours=2), force=True)
    d.refresh_from_db()
    assert d.status == S.RESOLVED and "no longer found" in d.resolution_note and d.resolved_by is None
    assert not BillDiscrepancy.objects.exclude(status=S.RESOLVED).exists()  # the totals agree again


def test_cross_midnight_payment_is_held_then_matched_by_the_next_bill(user_api, gateways):
    day = _day()
    next_day = day + dt.timedelta(days=1)
    # our clock said 23:59:50; the gateway booked it at 00:00:05 the next day
    crossed = paid_at(user_api, gateways, _at(next_day, 0, 0, 5))
    Payment.objects.filter(payment_no=crossed).update(paid_at=_at(day, 23, 59, 50))

    reconcile(day)
    d = BillDiscrepancy.objects.get(reference=crossed)
    assert (d.kind, d.status, d.held_until) == (K.MISSING_REMOTE, S.HELD, day + dt.timedelta(days=3))

    reconcile(next_day)
    d.refresh_from_db()
    assert d.status == S.RESOLVED and "booked across midnight" in d.resolution_note
    assert found(status__in=[S.OPEN, S.HELD]) == {}


def test_item_booked_the_day_before_by_the_gateway_matches_its_bill(user_api, gateways):
    day = _day()
    next_day = day + dt.timedelta(days=1)
    # the gateway booked it at 23:59:58; our clock (paid_at fallback) said 00:00:03 the next day
    crossed = paid_at(user_api, gateways, _at(day, 23, 59, 58))
    Payment.objects.filter(payment_no=crossed).update(paid_at=_at(next_day, 0, 0, 3))

    reconcile(day)
    reconcile(next_day)

    assert found() == {}


def test_held_item_becomes_missing_remote_after_three_days(user_api, gateways):
    day = _day()
    anchor = paid_at(user_api, gateways, _at(day, 8))
    lost = local_only_payment(anchor, _at(day, 23, 59, 55))

    reconcile(day)
    for n in (1, 2):
        reconcile(day + dt.timedelta(days=n))
        assert found(reference=lost) == {lost: (K.MISSING_REMOTE, S.HELD)}, f"day +{n}"
    reconcile(day + dt.timedelta(days=3))

    assert found(reference=lost) == {lost: (K.MISSING_REMOTE, S.OPEN)}


def test_midday_local_only_payment_is_missing_at_once(user_api, gateways):
    day = _day()
    anchor = paid_at(user_api, gateways, _at(day, 8))
    lost = local_only_payment(anchor, _at(day, 12))
    reconcile(day)
    assert found() == {lost: (K.MISSING_REMOTE, S.OPEN)}


def test_bad_sha1_fails_the_run_and_a_later_run_finishes_it(user_api, gateways, monkeypatch):
    from payments.gateways.registry import get_gateway

    day = _day()
    paid_at(user_api, gateways, _at(day, 9))
    client_type = type(get_gateway("wechat").client())
    real = client_type.download_bill
    monkeypatch.setattr(client_type, "download_bill", lambda self, url: (200, b"not what was hashed"))

    [run] = reconcile(day)

    assert run.status == BillRun.Status.FAILED and "SHA1" in run.error
    assert BillLine.objects.count() == 0 and BillDiscrepancy.objects.count() == 0
    monkeypatch.setattr(client_type, "download_bill", real)
    [run] = reconcile(day)
    assert run.status == BillRun.Status.DONE and run.attempts == 2


def test_alipay_bill_is_reconciled(user_api, gateways):
    day = _day()
    ok = paid_at(user_api, gateways, _at(day, 9), channel="alipay_page")
    pending = paid_at(user_api, gateways, _at(day, 10), channel="alipay_page", sync=False)
    [run] = bill_reconcile(bill_date=day, now=_morning_after(day), gateways=["alipay"])
    assert run.status == BillRun.Status.DONE, run.error
    assert found() == {pending: (K.MISSING_LOCAL, S.OPEN)}
    assert BillLine.objects.filter(gateway="alipay", reference=ok).exists()


def _queries_for(day: dt.date) -> int:
    with CaptureQueriesContext(connection) as ctx:
        [run] = reconcile(day)
    assert run.status == BillRun.Status.DONE, run.error
    return len(ctx.captured_queries)


def test_queries_are_bounded_per_batch_not_per_row(user_api, gateways, settings):
    small, large = _day(10), _day(8)
    refunded_at(user_api, gateways, paid_at(user_api, gateways, _at(small, 9)), _at(small, 18))
    for hour in range(9, 17):
        refunded = paid_at(user_api, gateways, _at(large, hour))
    refunded_at(user_api, gateways, refunded, _at(large, 18))
    assert _queries_for(small) == _queries_for(large)  # 2 rows or 9 rows: the same queries
    # three batches each way: 6 rows by 2 or 9 rows by 3 cost the same queries
    six, nine = _day(6), _day(5)
    for hour in range(9, 15):
        paid_at(user_api, gateways, _at(six, hour))
    for hour in range(9, 18):
        paid_at(user_api, gateways, _at(nine, hour))
    settings.BILL_BATCH_SIZE = 2
    by_two = _queries_for(six)
    settings.BILL_BATCH_SIZE = 3
    assert _queries_for(nine) == by_two


def test_task_reconciles_yesterday_by_default(user_api, gateways):
    from finance.tasks import reconcile_bill_task

    day = _day()
    paid_at(user_api, gateways, _at(day, 9))
    now = _morning_after(day)
    assert yesterday(now) == day
    result = reconcile_bill_task.run(None, now.isoformat())
    assert result["bill_date"] == str(day)
    assert {g: r["status"] for g, r in result["runs"].items()} == {"wechat": "done", "alipay": "done", "wallyt": "done"}


def test_command_prints_plain_lines_off_a_terminal(user_api, gateways):
    day = _day(1)
    paid_at(user_api, gateways, _at(day, 9))
    out = StringIO()
    call_command("reconcile_bill", "--date", str(day), "--gateway", "wechat", stdout=out)
    text = out.getvalue()
    assert "\r" not in text and f"wechat {day}: done" in text


def _today() -> dt.date:
    return dt.datetime.now(SHANGHAI).date()


@pytest.mark.parametrize("ahead", [0, 1, 30])  # today (the day is not over), tomorrow, a month on
def test_a_bill_of_a_day_not_over_is_refused_before_the_gateway_and_writes_nothing(user_api, gateways, ahead):
    day = _today() + dt.timedelta(days=ahead)
    paid_at(user_api, gateways, dt.datetime.now(SHANGHAI) - dt.timedelta(seconds=5))  # the sandbox has a trade today

    with pytest.raises(ValidationFailed) as refused:
        bill_reconcile(bill_date=day, now=timezone.now(), gateways=["wechat"])

    assert refused.value.code == "bill_not_published"
    assert str(day) in refused.value.message and str(day + dt.timedelta(days=1)) in refused.value.message
    assert refused.value.details["first_allowed"] == str(day + dt.timedelta(days=1))
    assert not BillRun.objects.exists() and not BillLine.objects.exists()


def test_the_test_clock_decides_whether_a_day_is_over():
    day = _day(3)
    with pytest.raises(ValidationFailed, match=str(day)):  # at 23:59 of that day its bill is not out
        bill_reconcile(bill_date=day, now=_at(day, 23, 59), gateways=["wechat"])
    with pytest.raises(ValidationFailed, match=str(_today())):  # a clock in the future does not end today
        bill_reconcile(bill_date=_today(), now=_morning_after(_today()), gateways=["wechat"])
    assert not BillRun.objects.exists()


@pytest.mark.parametrize("ahead", [0, 1])
def test_command_refuses_today_and_later_without_a_traceback_or_a_run(user_api, gateways, ahead):
    day = _today() + dt.timedelta(days=ahead)
    paid_at(user_api, gateways, dt.datetime.now(SHANGHAI) - dt.timedelta(seconds=5))
    out = StringIO()
    with pytest.raises(CommandError, match=rf"--date {day}: The bill of {day} is not published yet") as refused:
        call_command("reconcile_bill", "--date", str(day), "--gateway", "wechat", stdout=out)
    assert f"from {day + dt.timedelta(days=1)}" in str(refused.value)
    assert out.getvalue() == "" and not BillRun.objects.exists()


def test_task_refuses_today_without_a_run(user_api, gateways):
    from finance.tasks import reconcile_bill_task

    paid_at(user_api, gateways, dt.datetime.now(SHANGHAI) - dt.timedelta(seconds=5))
    with pytest.raises(ValidationFailed, match=str(_today())):
        reconcile_bill_task.run(str(_today()))
    assert not BillRun.objects.exists()


class _Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_command_draws_a_progress_bar_on_a_terminal(user_api, gateways):
    day = _day(1)
    paid_at(user_api, gateways, _at(day, 9))
    out = _Terminal()
    call_command("reconcile_bill", "--date", str(day), "--gateway", "wechat", stdout=out)
    text = out.getvalue()
    assert "\r" in text and f"wechat {day}: done" in text
    # tqdm's bar per phase, redrawn in place, each ending full with its count, rate and elapsed time
    assert re.search(r"\rwechat theirs: 100%\|#+\| (\d+)/\1 \[\d\d:\d\d<00:00, +[0-9.?]+it/s\]", text), text
    assert re.search(r"\rwechat ours: 100%\|#+\| (\d+)/\1 ", text), text


class Crash(BaseException):
    """The worker process dies (not an exception the job could catch)."""


def test_crash_mid_batch_is_taken_over_after_the_lease(user_api, gateways, settings, monkeypatch):
    import finance.bills as job

    day = _day()
    drifted = [paid_at(user_api, gateways, _at(day, hour)) for hour in range(9, 15)]
    Payment.objects.filter(payment_no__in=drifted).update(amount_fen=3)
    settings.BILL_BATCH_SIZE = 2
    real_record, calls = job._record, []

    def dies_in_second_batch(run, findings, *, now):
        calls.append(1)
        if len(calls) == 2:
            raise Crash
        real_record(run, findings, now=now)

    monkeypatch.setattr(job, "_record", dies_in_second_batch)
    with pytest.raises(Crash):
        reconcile(day)
    run = BillRun.objects.get(gateway="wechat", bill_date=day)
    assert run.status == BillRun.Status.RUNNING and BillDiscrepancy.objects.count() == 2  # batch 1 committed
    assert reconcile(day) == []  # the lease still holds: nobody else takes it yet

    monkeypatch.setattr(job, "_record", real_record)
    BillRun.objects.filter(pk=run.pk).update(lease_until=dt.datetime(2000, 1, 1, tzinfo=SHANGHAI))  # lease runs out
    [run] = reconcile(day)

    assert (run.status, run.attempts) == (BillRun.Status.DONE, 2)
    assert found() == {no: (K.AMOUNT_MISMATCH, S.OPEN) for no in drifted}


def test_task_retries_the_same_day_when_a_gateway_is_down(user_api, gateways):
    from core.errors import GatewayUnavailable
    from finance.tasks import reconcile_bill_task

    day = _day()
    paid_at(user_api, gateways, _at(day, 9))
    gateways.fault("wechat.bill", "http_500")
    with pytest.raises(GatewayUnavailable):
        reconcile_bill_task.run(None, _morning_after(day).isoformat())
    runs = {r.gateway: r for r in BillRun.objects.filter(bill_date=day)}
    assert runs["wechat"].status == "failed" and runs["alipay"].status == "done"
    result = reconcile_bill_task.run(str(day), (_morning_after(day) + dt.timedelta(days=1)).isoformat())
    assert result["runs"] == {"wechat": {"status": "done", **BillRun.objects.get(pk=runs["wechat"].pk).counts}}


def test_alipay_refund_rows_match_our_refunds(user_api, gateways):
    day = _day(1)  # yesterday: the latest day whose bill is published
    payment_no = paid_at(user_api, gateways, _at(day, 10), channel="alipay_page")
    order_no = Payment.objects.get(payment_no=payment_no).order.order_no
    refund = refund_request(order_no=order_no, amount_fen=200, reason="test", requested_by=user_api.user)
    refund_approve(refund_id=refund.pk, approver=staff_with("refunds.approve_refund"), note="ok")
    refund_submit(refund_id=refund.pk)
    assert Refund.objects.get(pk=refund.pk).status == "succeeded"
    # Alipay settles the refund within the call, now: move it onto the bill's day, at Alipay and here
    gateways.control(f"alipay/refunds/{refund.refund_no}/booked", json={"success_time": _at(day, 11).isoformat()})
    Refund.objects.filter(pk=refund.pk).update(succeeded_at=_at(day, 11))

    [run] = bill_reconcile(bill_date=day, now=_morning_after(day), gateways=["alipay"])

    assert run.status == BillRun.Status.DONE, run.error
    assert (run.counts["bill_payments"], run.counts["bill_refunds"], run.counts["our_refunds"]) == (1, 1, 1)
    assert found() == {}


def test_a_discrepancy_the_job_resolved_is_reopened_with_an_event_when_the_bill_shows_it_again():
    day = _day()
    run = BillRun.objects.create(gateway="wallyt", bill_date=day, token="t2")
    gone = BillDiscrepancyFactory(status=S.RESOLVED, kind=K.AMOUNT_MISMATCH, resolution_note="no longer found")
    held = BillDiscrepancyFactory(status=S.HELD, kind=K.MISSING_REMOTE)
    findings = [
        Finding(
            kind=d.kind,
            subject="payment",
            reference=d.reference,
            our_amount_fen=300,
            their_amount_fen=200,
            our_status="succeeded",
            their_status="SUCCESS",
        )
        for d in (gone, held)
    ]

    with transaction.atomic():
        _record(run, findings, now=timezone.now())

    gone.refresh_from_db()
    held.refresh_from_db()
    assert (gone.status, held.status) == (S.OPEN, S.OPEN)
    assert sorted(BillDiscrepancyEvent.objects.values_list("discrepancy_id", "from_status", "to_status", "actor")) == [
        (gone.pk, "resolved", "open", "system:bills"),
        (held.pk, "held", "open", "system:bills"),
    ]
