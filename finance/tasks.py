"""Celery tasks of finance: the daily reconciliation of the gateways' bills (beat: ``reconcile-bills``)."""

from celery import shared_task

from core.errors import GatewayUnavailable


# the name stays "refunds.reconcile_bill" (the beat entry and messages already queued use it)
@shared_task(bind=True, name="refunds.reconcile_bill", acks_late=True, max_retries=12)
def reconcile_bill_task(self, bill_date: str | None = None, now: str | None = None) -> dict:
    """Reconcile the bills (BILL_RECONCILE_GATEWAYS) of ``bill_date`` (ISO; None = yesterday in Asia/Shanghai).

    ``now`` is an ISO datetime (None = the current time). Several workers may run it at once: each
    (gateway, day) is claimed by one of them; done runs are not redone. A run that failed because a
    gateway was unavailable (or its bill failed the hash check) is retried with backoff, for the
    same day even when the retry happens after midnight. A ``bill_date`` not before today in
    Asia/Shanghai raises ``core.errors.ValidationFailed`` (its bill is not published yet; nothing is
    written, not retried).
    """
    from datetime import date, datetime

    from django.utils import timezone

    from finance.bills import bill_reconcile, yesterday

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
