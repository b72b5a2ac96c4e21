"""The finance workflow on bill discrepancies in admin: who may see it, assign, resolve with a
note (intermediate form), auto-repair by gateway query; and two workers sharing the job."""

import pytest
from django.contrib.admin import helpers
from django.test import Client

from conftest import run_concurrently
from finance.bills import bill_reconcile
from finance.models import BillDiscrepancy, BillDiscrepancyEvent, BillRun
from finance.tests.test_bills import _at, _day, _morning_after, found, paid_at, reconcile
from payments.models import Payment
from refunds.tests.test_workflow import staff_with

pytestmark = pytest.mark.django_db
K = BillDiscrepancy.Kind
S = BillDiscrepancy.Status
CHANGELIST = "/admin/finance/billdiscrepancy/"


@pytest.fixture
def bill_admin(settings):
    settings.ROOT_URLCONF = "finance.tests.bills_urls"


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _act(client: Client, action: str, ids, **extra):
    data = {"action": action, helpers.ACTION_CHECKBOX_NAME: [str(i) for i in ids], **extra}
    return client.post(CHANGELIST, data)


@pytest.fixture
def missing_local(user_api, gateways):
    """A day whose bill has a payment we still think pending (notification lost, never synced)."""
    day = _day()
    payment_no = paid_at(user_api, gateways, _at(day, 10), sync=False)
    reconcile(day)
    return BillDiscrepancy.objects.get(reference=payment_no)


def test_only_finance_sees_discrepancies(bill_admin, missing_local):
    assert _client(staff_with("refunds.export_finance")).get(CHANGELIST).status_code == 200
    assert _client(staff_with("refunds.approve_refund")).get(CHANGELIST).status_code == 200
    support = _client(staff_with("refunds.request_refund"))
    assert support.get(CHANGELIST).status_code == 403
    response = _act(support, "assign_to_me", [missing_local.pk])
    assert response.status_code == 403
    assert BillDiscrepancy.objects.get(pk=missing_local.pk).status == S.OPEN


def test_auto_repair_fixes_a_missing_local_by_query(bill_admin, missing_local):
    finance = staff_with("refunds.export_finance")
    assert Payment.objects.get(payment_no=missing_local.reference).status == "pending"

    response = _act(_client(finance), "auto_repair", [missing_local.pk])

    assert response.status_code == 302
    assert Payment.objects.get(payment_no=missing_local.reference).status == "succeeded"
    d = BillDiscrepancy.objects.get(pk=missing_local.pk)
    assert (d.status, d.auto_repaired, d.resolved_by) == (S.RESOLVED, True, finance)
    event = BillDiscrepancyEvent.objects.get(discrepancy=d, action="auto_repair")
    assert event.actor == f"staff:{finance.pk}" and event.to_status == S.RESOLVED
    # the next run of that day agrees: nothing is reopened
    reconcile(d.bill_date, now=_morning_after(d.bill_date).replace(hour=12), force=True)
    assert found(status__in=[S.OPEN, S.HELD, S.ASSIGNED]) == {}


def test_auto_repair_refuses_what_a_query_cannot_fix(bill_admin, missing_local):
    BillDiscrepancy.objects.filter(pk=missing_local.pk).update(kind=K.AMOUNT_MISMATCH)
    _act(_client(staff_with("refunds.export_finance")), "auto_repair", [missing_local.pk])
    assert BillDiscrepancy.objects.get(pk=missing_local.pk).status == S.OPEN
    assert Payment.objects.get(payment_no=missing_local.reference).status == "pending"


def test_assign_then_resolve_with_a_note(bill_admin, missing_local):
    finance = staff_with("refunds.approve_refund")
    client = _client(finance)

    _act(client, "assign_to_me", [missing_local.pk])
    d = BillDiscrepancy.objects.get(pk=missing_local.pk)
    assert (d.status, d.assigned_to) == (S.ASSIGNED, finance)

    page = _act(client, "resolve_with_note", [d.pk])
    assert page.status_code == 200 and b'name="note"' in page.content and d.reference.encode() in page.content
    assert BillDiscrepancy.objects.get(pk=d.pk).status == S.ASSIGNED
    refused = _act(client, "resolve_with_note", [d.pk], confirm="yes", note="")
    assert refused.status_code == 200 and BillDiscrepancy.objects.get(pk=d.pk).status == S.ASSIGNED

    _act(client, "resolve_with_note", [d.pk], confirm="yes", note="customer paid twice; refunded by hand")

    d.refresh_from_db()
    assert (d.status, d.resolved_by, d.resolution_note) == (
        S.RESOLVED,
        finance,
        "customer paid twice; refunded by hand",
    )
    assert [e.action for e in d.events.order_by("id")] == ["assign", "resolve"]


@pytest.mark.django_db(transaction=True)
def test_two_workers_share_the_runs_without_double_work(user_api, gateways):
    day = _day()
    paid_at(user_api, gateways, _at(day, 9))
    paid_at(user_api, gateways, _at(day, 10), channel="alipay_page")
    paid_at(user_api, gateways, _at(day, 11), channel="wallyt_jsapi", openid="o-walker")
    now = _morning_after(day)

    results = run_concurrently(
        lambda name: bill_reconcile(bill_date=day, now=now, worker=name), args_list=[("w1",), ("w2",), ("w3",)]
    )

    assert not [r for r in results if isinstance(r, BaseException)], results
    claimed = [run.gateway for runs in results for run in runs]
    assert sorted(claimed) == ["alipay", "wallyt", "wechat"]  # each run worked on by exactly one worker
    runs = BillRun.objects.filter(bill_date=day)
    assert {(r.gateway, r.status, r.attempts, r.counts["bill_payments"]) for r in runs} == {
        ("wechat", "done", 1, 1),
        ("alipay", "done", 1, 1),
        ("wallyt", "done", 1, 1),
    }
    assert bill_reconcile(bill_date=day, now=now) == []  # a late duplicate job finds nothing to do
