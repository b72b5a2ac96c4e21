"""Celery tasks of refunds: submitting an approved refund (retried with backoff), the beat job that heals
refunds and flagged payments (``refunds.reconciliation``), and the refund of one late or double payment."""

from celery import shared_task
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.errors import GatewayUnavailable
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
