from celery import shared_task
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from config.errors import GatewayUnavailable
from refunds.services import refund_submit


@shared_task(
    name="refunds.submit",
    acks_late=True,
    autoretry_for=(GatewayUnavailable,),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=10,
)
def refund_submit_task(refund_id: int) -> None:
    """Submit an approved refund. Retried with backoff while the gateway is unavailable; never
    twice for one refund (out_refund_no is the gateway's idempotency key)."""
    refund_submit(refund_id=refund_id)


@shared_task(name="refunds.reconcile_refunds", acks_late=True)
def reconcile_refunds_task(now: str | None = None) -> dict:
    """Beat: refund late/double payments, poll processing refunds, resubmit lost ones, alert on old ones."""
    from refunds.reconciliation import reconcile_refunds

    return reconcile_refunds(now=parse_datetime(now) if now else timezone.now())


@shared_task(name="refunds.refund_flagged_payment", acks_late=True)
def refund_flagged_payment_task(payment_id: int) -> None:
    """Sent right after a late or double payment is recorded, so its money goes back at once: refunds that
    payment (``Payment.pk``) only, if it is still flagged and unrefunded; the beat job refunds the rest."""
    from refunds.reconciliation import refund_flagged_payments_batch

    refund_flagged_payments_batch(payment_id=payment_id)


def refund_flagged_payment_send(payment_id: int) -> None:
    """``payments.hooks.FlaggedPaymentRefund``: queue ``refund_flagged_payment_task`` for ``payment_id``."""
    refund_flagged_payment_task.delay(payment_id)


@shared_task(bind=True, name="refunds.reconcile_bill", acks_late=True, max_retries=12)
def reconcile_bill_task(self, bill_date: str | None = None, now: str | None = None) -> dict:
    """Reconcile the bills (BILL_RECONCILE_GATEWAYS) of ``bill_date`` (ISO; None = yesterday in Asia/Shanghai).

    ``now`` is an ISO datetime (None = the current time). Several workers may run it at once: each
    (gateway, day) is claimed by one of them; done runs are not redone. A run that failed because a
    gateway was unavailable (or its bill failed the hash check) is retried with backoff, for the
    same day even when the retry happens after midnight.
    """
    from datetime import date, datetime

    from django.utils import timezone

    from refunds.bills import bill_reconcile, yesterday

    moment = datetime.fromisoformat(now) if now else timezone.now()
    day = date.fromisoformat(bill_date) if bill_date else yesterday(moment)
    runs = bill_reconcile(bill_date=day, now=moment, worker=f"celery:{self.request.id or 'local'}")
    failed = [run for run in runs if run.status == run.Status.FAILED]
    if any(run.error.startswith(GatewayUnavailable.__name__) for run in failed):  # others need a person
        exc = GatewayUnavailable(
            f"bill reconciliation of {day} failed for {', '.join(r.gateway for r in failed)}",
            details={"bill_date": str(day), "errors": {r.gateway: r.error for r in failed}},
        )
        raise self.retry(args=(str(day), None), exc=exc, countdown=min(3600, 60 * 2**self.request.retries))
    return {"bill_date": str(day), "runs": {run.gateway: {"status": run.status, **run.counts} for run in runs}}
