"""Healing by reconciliation: a refund that never reached its gateway is sent again after the grace period,
finance sees it and can send it again; every job takes its time from one ``now`` and a lease never goes
backwards."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.audit import Actor
from orders.models import Order
from payments.models import Payment
from payments.reconciliation import reconcile_payments
from payments.services import payment_sync
from payments.tests.flows import paid_order, pay, rental
from refunds.models import Refund, RefundEvent
from refunds.reconciliation import reconcile_refunds
from refunds.services import refund_approve, refund_request
from refunds.tests.test_admin_helpers import staff_in

pytestmark = pytest.mark.django_db(transaction=True)
S = Refund.Status
CHANNELS = {"wechat": "wechat_native", "alipay": "alipay_page", "wallyt": "wallyt_jsapi"}
SANDBOX_REFUND = {"wechat": "wechat.refund", "alipay": "alipay.refund", "wallyt": "wallyt.refund"}


def _paid(user_api, sandbox, gateway):
    extra = {"openid": "o-mini-1"} if gateway == "wallyt" else {}
    return paid_order(user_api, sandbox, channel=CHANNELS[gateway], **extra)


def _approved_while_refunds_fail(user_api, sandbox, gateway, order_no, amount_fen=None) -> Refund:
    """Approve while the gateway's refund endpoint answers 5xx until the submit task's retries are spent."""
    sandbox.fault(SANDBOX_REFUND[gateway], "http_500", count=-1)
    refund = refund_request(order_no=order_no, amount_fen=amount_fen, reason="test", requested_by=user_api.user)
    refund_approve(refund_id=refund.pk, approver=staff_in("finance"), note="ok")  # the task runs (eager), fails
    sandbox.control("faults", method="DELETE")
    refund.refresh_from_db()
    assert refund.status == S.PROCESSING
    return refund


def _at_gateway(sandbox, gateway, refund):
    return [r for r in sandbox.control(f"{gateway}/refunds")["refunds"] if r["out_refund_no"] == refund.refund_no]


@pytest.mark.parametrize("gateway", ["wechat", "alipay", "wallyt"])
def test_a_refund_that_never_reached_the_gateway_is_sent_again_after_the_grace(
    user_api, gateways, celery_eager, settings, gateway
):
    settings.REFUND_RESEND_GRACE_SECONDS = 300
    order, payment_no = _paid(user_api, gateways, gateway)
    refund = _approved_while_refunds_fail(user_api, gateways, gateway, order["order_no"])
    assert _at_gateway(gateways, gateway, refund) == []
    first = refund.submitted_at + timedelta(minutes=1)

    # the gateway says it does not know the refund: shown, not re-sent yet (grace period)
    reconcile_refunds(now=first)
    refund.refresh_from_db()
    assert refund.status == S.PROCESSING and refund.gateway_unknown_since == first
    assert RefundEvent.objects.filter(refund=refund, action="gateway_unknown", actor="system:reconcile").count() == 1
    assert _at_gateway(gateways, gateway, refund) == []

    # after the grace period it is sent again, with the same refund number, audited
    reconcile_refunds(now=first + timedelta(seconds=301))
    assert len(_at_gateway(gateways, gateway, refund)) == 1
    resubmit = RefundEvent.objects.get(refund=refund, action="resubmit")
    assert resubmit.actor == "system:reconcile" and resubmit.data == {"gateway_unknown_since": first.isoformat()}
    refund.refresh_from_db()
    assert refund.gateway_unknown_since is None  # the gateway knows it now
    if gateway != "alipay":  # Alipay refunds synchronously; the others settle later
        gateways.control(f"{gateway}/refunds/{refund.refund_no}/settle", json={"status": "SUCCESS"})
        reconcile_refunds(now=first + timedelta(minutes=8))

    refund.refresh_from_db()
    assert refund.status == S.SUCCEEDED
    assert Order.objects.get(order_no=order["order_no"]).status == "refunded"
    assert Payment.objects.get(payment_no=payment_no).refunded_fen == refund.amount_fen
    assert len(_at_gateway(gateways, gateway, refund)) == 1  # never twice


def test_a_gateway_that_keeps_failing_is_asked_again_every_poll_after_the_grace(user_api, gateways, celery_eager):
    order, _ = _paid(user_api, gateways, "wechat")
    refund = _approved_while_refunds_fail(user_api, gateways, "wechat", order["order_no"])
    start = refund.submitted_at + timedelta(minutes=1)
    reconcile_refunds(now=start)
    gateways.fault("wechat.refund", "http_500", count=-1)

    reconcile_refunds(now=start + timedelta(minutes=6))  # re-sent: 5xx again
    reconcile_refunds(now=start + timedelta(minutes=7))  # and again on the next poll

    assert RefundEvent.objects.filter(refund=refund, action="resubmit").count() == 2
    gateways.control("faults", method="DELETE")
    reconcile_refunds(now=start + timedelta(minutes=8))
    assert len(_at_gateway(gateways, "wechat", refund)) == 1
    assert Refund.objects.get(pk=refund.pk).gateway_unknown_since is None


def test_finance_sees_unknown_refunds_and_sends_one_again(user_api, gateways, celery_eager, client):
    order, _ = _paid(user_api, gateways, "wechat")
    refund = _approved_while_refunds_fail(user_api, gateways, "wechat", order["order_no"], amount_fen=300)
    reconcile_refunds(now=refund.submitted_at + timedelta(minutes=1))
    finance, support = staff_in("finance"), staff_in("support")

    client.force_login(finance)
    listed = client.get(reverse("admin:refunds_refund_changelist"), {"gateway_unknown": "yes"})
    assert [r.pk for r in listed.context["cl"].result_list] == [refund.pk]
    dashboard = client.get(reverse("admin:backoffice_dashboard"))
    assert dashboard.context["queues"]["gateway_unknown_count"] == 1
    assert dashboard.context["queues"]["gateway_unknown_fen"] == 300

    client.force_login(support)  # without refunds.resend_refund: no such action
    denied = client.post(
        reverse("admin:refunds_refund_changelist"),
        {"action": "resend_to_gateway", "_selected_action": [refund.pk], "confirm": "yes", "note": "x"},
    )
    assert denied.status_code in (200, 302, 403)
    assert _at_gateway(gateways, "wechat", refund) == []

    client.force_login(finance)
    sent = client.post(
        reverse("admin:refunds_refund_changelist"),
        {"action": "resend_to_gateway", "_selected_action": [refund.pk], "confirm": "yes", "note": "ticket 42"},
    )
    assert sent.status_code == 302
    assert len(_at_gateway(gateways, "wechat", refund)) == 1
    event = RefundEvent.objects.get(refund=refund, action="resubmit")
    assert (event.actor, event.reason) == (f"staff:{finance.pk}", "ticket 42")


# --------------------------------------------------------------------------- one now per job, leases


@pytest.mark.parametrize("gateway", ["wechat", "alipay"])
def test_reconcile_refunds_with_now_ahead_of_the_clock_claims_each_refund_once(
    user_api, gateways, celery_eager, gateway
):
    """The reported case: ``reconcile_refunds --now`` ahead of the real clock claimed the same Alipay refund
    about 1,000 times (applying the answer put the wall clock back into the lease)."""
    order, _ = _paid(user_api, gateways, gateway)
    if gateway == "alipay":  # Alipay's refund query answers without refund_status
        refund = _approved_while_refunds_fail(user_api, gateways, gateway, order["order_no"])
    else:  # WeChat answers PROCESSING
        refund = refund_request(order_no=order["order_no"], amount_fen=None, reason="t", requested_by=user_api.user)
        refund_approve(refund_id=refund.pk, approver=staff_in("finance"), note="ok")
    ahead = timezone.now() + timedelta(hours=2)

    done = reconcile_refunds(now=ahead, max_batches=30)

    assert done["refunds"] == 1
    assert Refund.objects.get(pk=refund.pk).last_synced_at == ahead


def test_reconcile_payments_with_now_ahead_of_the_clock_claims_each_payment_once(user_api, gateways):
    order = rental(user_api)
    payment_no = pay(user_api, order["order_no"], "wechat_native").json()["payment_no"]
    ahead = timezone.now() + timedelta(minutes=5)  # before the order expires: the payment is asked about

    done = reconcile_payments(now=ahead, max_batches=30)

    assert done["payments"] == 1
    assert Payment.objects.get(payment_no=payment_no).last_synced_at == ahead
    # a word applied later by a process on the real clock does not move the lease back
    payment_sync(payment_no=payment_no, actor=Actor.system("test"))
    assert Payment.objects.get(payment_no=payment_no).last_synced_at == ahead
