"""Overtime follows every rule of payments and refunds, and finance sees it: paid through the real WeChat Pay SDK
against the sandbox (the trust checks and sync of any payment), refunded only through staff with maker-checker,
counted in the settlement report and the dashboard, and owed overtime shown on the dashboard."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.audit import Actor
from core.errors import DomainError
from finance.backoffice.dashboard import dashboard_context
from finance.settlement import settlement_report
from orders.abandoned import rentals_abandon_overdue
from orders.models import Order
from orders.tests.test_api import open_door, wallet_paid_rental
from orders.tests.test_overtime import pay_overtime
from payments.models import Payment
from payments.services import payment_sync
from refunds.models import Refund
from refunds.services import refund_approve, refund_request
from refunds.tests.test_admin_helpers import staff_in

pytestmark = pytest.mark.django_db


def overdue_rental(user_api, settings, late=timedelta(minutes=30)) -> dict:
    paid_at = timezone.now() - timedelta(hours=2) - settings.PICKUP_CODE_GRACE - late
    return wallet_paid_rental(user_api, paid_at=paid_at, hours=2)


def test_overtime_paid_through_wechat_in_the_sandbox_opens_the_door_and_is_in_the_reports(
    user_api, gateways, sandbox, settings
):
    rental = overdue_rental(user_api, settings)
    due = open_door(user_api, rental["order_no"]).json()["error"]["details"]
    started = user_api.post(
        "/api/v1/payments/", {"order_no": due["order_no"], "channel": "wechat_native"}, format="json"
    )
    assert started.status_code == 201, started.content
    payment_no = started.json()["payment_no"]
    assert Payment.objects.get(payment_no=payment_no).amount_fen == due["amount_fen"] == 1_000

    sandbox.control(f"wechat/transactions/{payment_no}/pay", json={})
    payment_sync(payment_no=payment_no, actor=Actor.system("test"))  # the gateway's answer, checked field by field

    assert Order.objects.get(order_no=due["order_no"]).status == "paid"
    assert Order.objects.get(order_no=rental["order_no"]).status == "completed"
    today = timezone.localdate()  # the rental was paid hours ago: perhaps yesterday
    report = settlement_report(date_from=today - timedelta(days=1), date_to=today)
    by = report.by_channel()
    assert by["wechat_native"].gross_fen == 1_000 and by["wechat_native"].payments == 1  # the overtime
    assert "wallet" not in by and report.wallet_total.gross_fen == 1_000  # the rental: internal, shown apart
    week = {w.label: w for w in dashboard_context()["windows"]}["7 days"]
    assert week.paid_fen == 2_000


def test_paid_overtime_is_refunded_by_staff_with_maker_checker(user_api, settings):
    rental = overdue_rental(user_api, settings)
    overtime = Order.objects.get(
        order_no=open_door(user_api, rental["order_no"]).json()["error"]["details"]["order_no"]
    )
    pay_overtime(overtime, timezone.now())
    support, finance = staff_in("support"), staff_in("finance")
    with pytest.raises(DomainError) as err:  # the customer cannot: the time was used
        refund_request(order_no=overtime.order_no, amount_fen=None, reason="no", requested_by=user_api.user)
    assert err.value.code == "refund_needs_staff"

    refund = refund_request(
        order_no=overtime.order_no, amount_fen=None, reason="door jammed", requested_by=support, source="staff"
    )
    assert refund.status == Refund.Status.REQUESTED  # waits for a second person
    with pytest.raises(DomainError):
        refund_approve(refund_id=refund.pk, approver=support)  # not the maker
    refund = refund_approve(refund_id=refund.pk, approver=finance)

    assert (refund.status, refund.approved_by, refund.requested_by) == (Refund.Status.APPROVED, finance, support)
    assert Order.objects.get(order_no=rental["order_no"]).status == "completed"  # the rental is not touched


def test_owed_overtime_of_abandoned_rentals_is_on_the_dashboard(user_api, settings):
    rental = overdue_rental(user_api, settings, late=settings.ABANDONED_AFTER)
    rentals_abandon_overdue()
    owed = Order.objects.get(parent__order_no=rental["order_no"])
    queues = dashboard_context()["queues"]
    assert (queues["overtime_owed_count"], queues["overtime_owed_fen"]) == (1, owed.amount_fen)
