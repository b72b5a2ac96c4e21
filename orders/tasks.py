"""Beat jobs of orders."""

from celery import shared_task
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from orders.abandoned import rentals_abandon_overdue


@shared_task(name="orders.rentals_abandon_overdue", acks_late=True)
def rentals_abandon_overdue_task(now: str | None = None) -> dict:
    """Beat (every ``ABANDONED_INTERVAL_SECONDS``): abandon rentals overdue by more than ``ABANDONED_AFTER``."""
    run = rentals_abandon_overdue(now=parse_datetime(now) if now else timezone.now())
    return {"abandoned": run.abandoned, "owed": run.owed}
