"""Celery tasks of payments: the reconciliation of open payments (beat) and the billing of a rental paid
after use (its Pay Score service order)."""

from celery import shared_task
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.audit import Actor
from payments.payscore import payscore_bill_order
from payments.reconciliation import reconcile_payments


@shared_task(name="payments.reconcile_payments", acks_late=True)
def reconcile_payments_task(now: str | None = None) -> dict:
    """Beat: poll open gateway payments on their tier; close expired ones (gateway first)."""
    return reconcile_payments(now=parse_datetime(now) if now else timezone.now())


@shared_task(
    name="payments.payscore_bill_order", acks_late=True, autoretry_for=(Exception,), max_retries=5, retry_backoff=True
)
def payscore_bill_order_task(order_id: int) -> str | None:
    """After a Pay Score rental completed: bill the time used and complete the service order at WeChat
    (a failure is retried here, and healed by reconciliation in any case)."""
    so = payscore_bill_order(order_id=order_id, actor=Actor.system("payscore"))
    return so.status if so else None
