"""Reconciliation of unpaid orders: tiered polling of open gateway payments, closing at expiry.

Jobs take ``now`` as a parameter and work in batches. A batch is claimed in a short transaction
(``select_for_update(skip_locked=True)``) by stamping ``last_synced_at`` (a lease: the rows are
no longer due for any other worker), then processed outside that transaction: gateway I/O never
runs under row locks. A crash mid-batch is healed when the rows fall due again.

A job's batches walk forward by id (keyset: each claims only rows after the last one the previous
batch claimed). The rows a batch closes stay in the open-payments index as dead entries until
VACUUM; a batch that started from the first id again would step over all of them, and a run of N
rows would take time in N squared. A row passed over (locked by another worker) is the next run's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet, Value
from django.db.models.functions import Coalesce, Greatest

from core.audit import Actor
from core.errors import DomainError, GatewayUnavailable
from core.logging import log_context
from orders.models import Order
from orders.services import order_cancel
from payments.models import Channel, Payment, ServiceOrder
from payments.payscore import payscore_reconcile
from payments.services import payment_expire, payment_sync

logger = logging.getLogger(__name__)
EXPIRY = Actor.system("expiry")
RECONCILE = Actor.system("reconcile")
MINUTE = timedelta(minutes=1)
# (age below, poll at most every): every minute while young, then every 10 minutes, then hourly
TIERS = ((timedelta(minutes=10), MINUTE), (timedelta(hours=1), timedelta(minutes=10)), (None, timedelta(hours=1)))


def scaled(duration: timedelta) -> timedelta:
    """A reconciliation interval or age bound times ``RECONCILE_TIME_SCALE`` (1 in production; a test or the
    chaos bench shortens every interval at once, like the sandbox's ``--notify-scale``)."""
    return duration * settings.RECONCILE_TIME_SCALE


def tiers() -> tuple[tuple[timedelta | None, timedelta], ...]:
    """``TIERS``, scaled."""
    return tuple((scaled(age) if age else None, scaled(every)) for age, every in TIERS)


@dataclass
class BatchReport:
    claimed: int = 0
    succeeded: int = 0
    closed: int = 0
    unchanged: int = 0
    errors: int = 0
    last_id: int = 0  # the last id claimed: where the job's next batch starts
    details: list[str] = field(default_factory=list)


def not_synced_since(moment: datetime) -> Q:
    return Q(last_synced_at__isnull=True) | Q(last_synced_at__lte=moment)


def due_by_tier(age_field: str, now: datetime) -> Q:
    """Rows whose age (from ``age_field``) puts them in a tier whose polling interval has passed."""
    due = Q()
    younger_than = None
    for age, every in tiers():
        band = Q(**{f"{age_field}__gt": now - age}) if age else Q()
        if younger_than is not None:
            band &= Q(**{f"{age_field}__lte": now - younger_than})
        due |= band & not_synced_since(now - every)
        younger_than = age
    return due


def payments_due(now: datetime) -> QuerySet[Payment]:
    """Open gateway payments whose tier says "ask again", and every expired one (at most once a minute)."""
    expired = Q(order__expires_at__lte=now) & not_synced_since(now - scaled(MINUTE))
    return (
        Payment.objects.filter(status__in=Payment.OPEN)
        .exclude(channel=Channel.WALLET)
        .filter(due_by_tier("created_at", now) | expired)
    )


@transaction.atomic
def claim_batch(queryset: QuerySet, *, now: datetime, size: int, after_id: int = 0) -> list[int]:
    """Lock up to ``size`` due rows with an id above ``after_id`` (skipping rows other workers hold), in id
    order, and stamp ``last_synced_at`` with the job's ``now``: a lease that makes them not due for anyone
    else until their tier comes round again. A lease never goes backwards (a worker whose clock is behind
    leaves a later stamp as it is); applying the gateway's answer stamps the same ``now``
    (``payments.services.synced_at``)."""
    ids = list(
        queryset.filter(id__gt=after_id)
        .select_for_update(skip_locked=True, of=("self",))
        .order_by("id")
        .values_list("id", flat=True)[:size]
    )
    stamp = Value(now)
    queryset.model.objects.filter(id__in=ids).update(
        last_synced_at=Greatest(Coalesce(F("last_synced_at"), stamp), stamp)
    )
    return ids


def reconcile_payments_batch(*, now: datetime, size: int = 100, after_id: int = 0) -> BatchReport:
    """One batch (due payments with an id above ``after_id``): ask the gateway about them; close expired ones
    (gateway first)."""
    report = BatchReport()
    ids = claim_batch(payments_due(now), now=now, size=size, after_id=after_id)
    report.claimed = len(ids)
    report.last_id = ids[-1] if ids else after_id
    for payment in Payment.objects.filter(id__in=ids).select_related("order").order_by("id"):
        try:
            with log_context(payment_no=payment.payment_no, order_no=payment.order.order_no):
                result = _reconcile_one(payment, now=now)
        except GatewayUnavailable as exc:
            report.errors += 1
            logger.warning("reconcile %s: gateway unavailable (%s); next tier retries", payment.payment_no, exc)
            continue
        except DomainError as exc:
            report.errors += 1
            report.details.append(f"{payment.payment_no}: {exc.code}")
            logger.warning("reconcile %s: %s", payment.payment_no, exc.message)
            continue
        setattr(report, result, getattr(report, result) + 1)
    return report


def _reconcile_one(payment: Payment, *, now: datetime) -> str:
    if payment.order.expires_at > now:
        after = payment_sync(payment_no=payment.payment_no, actor=RECONCILE, now=now)
        return (
            "succeeded"
            if after.status == Payment.Status.SUCCEEDED
            else ("closed" if after.status == Payment.Status.CLOSED else "unchanged")
        )
    try:
        payment_expire(payment=payment, now=now, actor=EXPIRY)
    except DomainError as exc:
        if exc.code != "trade_already_paid":
            raise
        return "succeeded"  # it was paid after all: the payment was applied instead
    return "closed"


@transaction.atomic
def expire_unpaid_orders_batch(*, now: datetime, size: int = 200) -> int:
    """Orders past expiry with no open payment: cancelled, compartment released (no gateway I/O)."""
    orders = list(
        Order.objects.select_for_update(skip_locked=True)
        .filter(status=Order.Status.PENDING_PAYMENT, expires_at__lte=now)
        .exclude(payments__status__in=Payment.OPEN)
        .exclude(service_orders__status=ServiceOrder.Status.CREATED)  # cancelled at WeChat first (payscore)
        .order_by("id")[:size]
    )
    for order in orders:
        order_cancel(order_id=order.pk, actor=EXPIRY, reason="expired unpaid", locked_order=order)
    return len(orders)


def run_until_done(batch: Callable[[], int], *, max_batches: int, progress: Callable[[int], None] | None = None) -> int:
    """Run ``batch`` (returning how many rows it handled) until it handles none."""
    total = 0
    for _ in range(max_batches):
        handled = batch()
        if not handled:
            break
        total += handled
        if progress:
            progress(total)
    return total


def reconcile_payments(
    *, now: datetime, size: int = 100, max_batches: int = 1000, progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    """The whole job: due payments in batches, then expired orders without a payment."""
    totals = BatchReport()

    def one_batch() -> int:
        report = reconcile_payments_batch(now=now, size=size, after_id=totals.last_id)
        totals.last_id = report.last_id
        for name in ("claimed", "succeeded", "closed", "unchanged", "errors"):
            setattr(totals, name, getattr(totals, name) + getattr(report, name))
        logger.info(
            "reconcile payments: batch of %s (succeeded %s, closed %s, errors %s)",
            report.claimed,
            report.succeeded,
            report.closed,
            report.errors,
        )
        return report.claimed

    run_until_done(one_batch, max_batches=max_batches, progress=progress)
    service_orders = payscore_reconcile(now=now, size=size)
    cancelled = run_until_done(lambda: expire_unpaid_orders_batch(now=now, size=size), max_batches=max_batches)
    return {
        "payments": totals.claimed,
        "succeeded": totals.succeeded,
        "closed": totals.closed,
        "unchanged": totals.unchanged,
        "errors": totals.errors,
        "orders_cancelled": cancelled,
        "service_orders": service_orders["service_orders"],
        "service_order_errors": service_orders["errors"],
    }
