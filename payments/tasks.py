from celery import shared_task
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from payments.reconciliation import reconcile_payments


@shared_task(name="payments.reconcile_payments", acks_late=True)
def reconcile_payments_task(now: str | None = None) -> dict:
    """Beat: poll open gateway payments on their tier; close expired ones (gateway first)."""
    return reconcile_payments(now=parse_datetime(now) if now else timezone.now())
