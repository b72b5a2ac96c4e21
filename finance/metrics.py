"""``GET /metrics``: the business metrics, computed from the database at scrape time, plus
django-prometheus's request, response and database metrics, in the Prometheus exposition format
written by ``prometheus_client``.

The business metrics come from :class:`BusinessCollector`, a ``prometheus_client`` custom collector
whose ``collect()`` runs a handful of aggregate queries (no per-row loops) when Prometheus scrapes,
so they are the same from every gunicorn worker and include what Celery workers did: nothing is
counted in memory. Counters ("..._total") are counts of append-only facts (rows created, payments
paid, audit events, inbox rows), so they only go down when rows are purged.

The request metrics (``django_http_*``, ``django_db_*``) are counted in memory by each process.
Under gunicorn (``config/gunicorn.py``) every worker writes them to files in
``PROMETHEUS_MULTIPROC_DIR`` (``var/prometheus`` of the checkout by default) and the view sums them
with ``prometheus_client.multiprocess.MultiProcessCollector``; elsewhere (``runserver``, the tests)
the process's own registry is served. Celery workers do not serve ``/metrics``: what they do shows in
the business metrics.

Access: with ``METRICS_TOKEN`` set, a scraper sends ``Authorization: Bearer <token>``; without a
token, only a request from loopback that did not come through a proxy is answered (a local
reverse proxy makes every request look local, so a forwarded request never counts as loopback).

The metric families are listed in the README ("Metrics"); each has its HELP text below.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.core.exceptions import FieldError
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, F, Min, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from orders.models import Order
from payments.models import CHANNEL_ROUTES, Channel, GatewayNotification, Payment, PaymentEvent
from refunds.models import Refund

logger = logging.getLogger(__name__)

LAG_WINDOW = timedelta(hours=24)
LAG_QUANTILES = (0.5, 0.9, 0.99)
# seconds from starting a payment to the gateway's paid time (an order can be paid for 15 minutes)
PAYMENT_DURATION_BUCKETS = (5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600)
OPEN_REFUND_STATUSES = (
    Refund.Status.REQUESTED,
    Refund.Status.APPROVED,
    Refund.Status.PROCESSING,
    Refund.Status.ABNORMAL,
)
GATEWAYS = sorted({gateway for gateway, _ in CHANNEL_ROUTES.values()} - {"wallet"})
_PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_FORWARDED")


# --- The queries (one or two per group, all aggregates) ---------------------------------------------
def _payments() -> Iterator[Metric]:
    count = GaugeMetricFamily("locker_payments", "Payments by channel and status.", labels=["channel", "status"])
    amount = GaugeMetricFamily(
        "locker_payments_amount_fen",
        "Sum of payment amounts (fen) by channel and status.",
        labels=["channel", "status"],
    )
    created = CounterMetricFamily(
        "locker_payments_created", "Payments started (rows created), by channel.", labels=["channel"]
    )
    succeeded = CounterMetricFamily(
        "locker_payments_succeeded", "Payments paid (a paid time recorded), by channel.", labels=["channel"]
    )
    failed = CounterMetricFamily(
        "locker_payments_failed",
        "Payments the gateway reported failed (audited transitions to failed), by channel.",
        labels=["channel"],
    )
    duration = HistogramMetricFamily(
        "locker_payment_duration_seconds",
        "Seconds from starting a payment to its paid time, paid payments by channel.",
        labels=["channel"],
    )
    paid = Q(paid_at__isnull=False)
    buckets = {
        f"le{i}": Count("id", filter=paid & Q(paid_at__lte=F("created_at") + timedelta(seconds=bound)))
        for i, bound in enumerate(PAYMENT_DURATION_BUCKETS)
    }
    rows = {
        (row["channel"], row["status"]): row
        for row in Payment.objects.order_by()
        .values("channel", "status")
        .annotate(
            n=Count("id"),
            fen=Sum("amount_fen"),
            paid=Count("id", filter=paid),
            took=Sum(F("paid_at") - F("created_at"), filter=paid),
            **buckets,
        )
    }
    failures = dict(
        PaymentEvent.objects.order_by()
        .filter(to_status=Payment.Status.FAILED)
        .values("payment__channel")
        .annotate(n=Count("id"))
        .values_list("payment__channel", "n")
    )
    keys = {(c, s) for c in Channel.values for s in Payment.Status.values} | set(rows)
    for channel, status in sorted(keys):
        row = rows.get((channel, status), {})
        count.add_metric([channel, status], row.get("n", 0))
        amount.add_metric([channel, status], row.get("fen") or 0)
    bounds = [*(str(float(b)) for b in PAYMENT_DURATION_BUCKETS), "+Inf"]
    for channel in sorted({c for c, _ in keys}):
        mine = [row for (c, _), row in rows.items() if c == channel]
        n_paid = sum(row["paid"] for row in mine)
        created.add_metric([channel], sum(row["n"] for row in mine))
        succeeded.add_metric([channel], n_paid)
        failed.add_metric([channel], failures.get(channel, 0))
        cumulative = [sum(row[f"le{i}"] for row in mine) for i in range(len(PAYMENT_DURATION_BUCKETS))]
        seconds = sum((row["took"] or timedelta(0) for row in mine), timedelta(0)).total_seconds()
        duration.add_metric([channel], list(zip(bounds, [*cumulative, n_paid], strict=True)), seconds)
    yield from (count, amount, created, succeeded, failed, duration)


def _notifications() -> Iterator[Metric]:
    received = CounterMetricFamily(
        "locker_notifications_received", "Gateway notifications stored in the inbox, by gateway.", labels=["gateway"]
    )
    applied = CounterMetricFamily(
        "locker_notifications_applied",
        "Inbox rows verified and applied (duplicates of an applied one not counted), by gateway.",
        labels=["gateway"],
    )
    failures = CounterMetricFamily(
        "locker_notification_verify_failures",
        "Inbox rows that were not verified (bad signature, certificate, timestamp, ids or amount; "
        "unconfigured gateway).",
        labels=["gateway"],
    )
    unapplied = GaugeMetricFamily(
        "locker_notifications_unapplied",
        "Verified notifications that could not be applied (error kept).",
        labels=["gateway"],
    )
    rows = {
        row["gateway"]: row
        for row in GatewayNotification.objects.order_by()
        .values("gateway")
        .annotate(
            n=Count("id"),
            applied=Count("id", filter=Q(verified=True, processed_at__isnull=False, duplicate=False)),
            unverified=Count("id", filter=Q(verified=False)),
            unapplied=Count("id", filter=Q(verified=True, processed_at__isnull=True) & ~Q(error="")),
        )
    }
    for gateway in sorted(set(GATEWAYS) | set(rows)):
        row = rows.get(gateway, {})
        received.add_metric([gateway], row.get("n", 0))
        applied.add_metric([gateway], row.get("applied", 0))
        failures.add_metric([gateway], row.get("unverified", 0))
        unapplied.add_metric([gateway], row.get("unapplied", 0))
    yield from (received, applied, failures, unapplied)


def _apply_lag(now: datetime) -> Iterator[Metric]:
    """Notify-to-apply lag of notifications applied (not duplicates) and received in the window."""
    table = connection.ops.quote_name(GatewayNotification._meta.db_table)
    sql = f"""
        SELECT count(*), coalesce(sum(lag), 0)::float8, max(lag)::float8,
               percentile_cont(%s::float8[]) WITHIN GROUP (ORDER BY lag)
        FROM (
            SELECT extract(epoch FROM processed_at - received_at)::float8 AS lag
            FROM {table}
            WHERE processed_at IS NOT NULL AND NOT duplicate AND received_at >= %s
        ) AS applied
    """  # noqa: S608 - the table name comes from the model, the values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(LAG_QUANTILES), now - LAG_WINDOW])
        count, total, longest, quantiles = cursor.fetchone()
    lag = SummaryMetricFamily(
        "locker_notification_apply_lag_seconds",
        "Seconds from receiving a gateway notification to applying it, notifications received in the last 24 h.",
        count_value=count,
        sum_value=total,
    )
    for q, value in zip(LAG_QUANTILES, quantiles or [None] * len(LAG_QUANTILES), strict=True):
        lag.add_sample(lag.name, {"quantile": str(q)}, float("nan") if value is None else value)
    yield lag
    yield GaugeMetricFamily(
        "locker_notification_apply_lag_max_seconds",
        "Longest notify-to-apply lag in the last 24 h.",
        value=longest if longest is not None else 0,
    )


def _orders(now: datetime) -> Iterator[Metric]:
    stuck = GaugeMetricFamily(
        "locker_orders_stuck",
        "Orders still pending payment after expires_at (the expiry job is behind).",
        labels=["kind"],
    )
    oldest = GaugeMetricFamily(
        "locker_orders_stuck_oldest_seconds", "Seconds since the oldest stuck order expired (0: none).", labels=["kind"]
    )
    rows = {
        row["kind"]: row
        for row in Order.objects.order_by()
        .filter(status=Order.Status.PENDING_PAYMENT, expires_at__lt=now)
        .values("kind")
        .annotate(n=Count("id"), first=Min("expires_at"))
    }
    for kind in sorted(set(Order.Kind.values) | set(rows)):
        row = rows.get(kind)
        stuck.add_metric([kind], row["n"] if row else 0)
        oldest.add_metric([kind], (now - row["first"]).total_seconds() if row else 0)
    yield from (stuck, oldest)


def _refunds(now: datetime) -> Iterator[Metric]:
    hours = getattr(settings, "REFUND_STUCK_ALERT_HOURS", 24)
    limit = now - timedelta(hours=hours)
    S = Refund.Status
    # how long a refund has been in its current stage: since it was asked for, decided or sent
    overdue_q = (
        Q(status=S.REQUESTED, created_at__lte=limit)
        | Q(status=S.APPROVED, decided_at__lte=limit)
        | Q(status__in=(S.PROCESSING, S.ABNORMAL), submitted_at__lte=limit)
    )
    open_ = GaugeMetricFamily(
        "locker_refunds_open",
        "Refunds not finished: requested (awaiting approval), approved, processing, abnormal.",
        labels=["status"],
    )
    amount = GaugeMetricFamily(
        "locker_refunds_open_amount_fen", "Sum of open refund amounts (fen) by status.", labels=["status"]
    )
    overdue = GaugeMetricFamily(
        "locker_refunds_overdue",
        f"Open refunds in the same stage for more than REFUND_STUCK_ALERT_HOURS ({hours} h).",
        labels=["status"],
    )
    requested = CounterMetricFamily(
        "locker_refunds_requested", "Refunds asked for (rows created), by payment channel.", labels=["channel"]
    )
    requested_fen = CounterMetricFamily(
        "locker_refunds_requested_amount_fen",
        "Sum of refund amounts asked for (fen), by payment channel.",
        labels=["channel"],
    )
    succeeded = CounterMetricFamily(
        "locker_refunds_succeeded",
        "Refunds paid back (a success time recorded), by payment channel.",
        labels=["channel"],
    )
    rows = list(
        Refund.objects.order_by()
        .values("status", channel=F("payment__channel"))
        .annotate(
            n=Count("id"),
            fen=Sum("amount_fen"),
            late=Count("id", filter=overdue_q),
            done=Count("id", filter=Q(succeeded_at__isnull=False)),
        )
    )
    for status in OPEN_REFUND_STATUSES:
        mine = [row for row in rows if row["status"] == status]
        open_.add_metric([status], sum(row["n"] for row in mine))
        amount.add_metric([status], sum(row["fen"] or 0 for row in mine))
        overdue.add_metric([status], sum(row["late"] for row in mine))
    for channel in sorted(set(Channel.values) | {row["channel"] for row in rows}):
        mine = [row for row in rows if row["channel"] == channel]
        requested.add_metric([channel], sum(row["n"] for row in mine))
        requested_fen.add_metric([channel], sum(row["fen"] or 0 for row in mine))
        succeeded.add_metric([channel], sum(row["done"] for row in mine))
    yield from (open_, amount, overdue, requested, requested_fen, succeeded)


def _model_or_none(app_label: str, model_name: str):
    try:
        return apps.get_model(app_label, model_name)
    except LookupError:
        return None


def _discrepancies() -> Iterator[Metric]:
    """Bill reconciliation discrepancies; nothing until the model and its table exist."""
    family = GaugeMetricFamily(
        "locker_reconciliation_discrepancies",
        "Differences between the gateways' bills and our records, by gateway, kind and status.",
        labels=["gateway", "kind", "status"],
    )
    model = _model_or_none("finance", "BillDiscrepancy")
    rows: list[dict] = []
    if model is not None:
        try:
            with transaction.atomic():  # a savepoint: a missing table must not break the caller's transaction
                rows = list(model.objects.order_by().values("gateway", "kind", "status").annotate(n=Count("pk")))
        except (DatabaseError, FieldError) as exc:
            logger.warning("metrics: bill discrepancies unavailable: %s", exc)
    for row in sorted(rows, key=lambda r: (str(r["gateway"]), str(r["kind"]), str(r["status"]))):
        family.add_metric([str(row["gateway"]), str(row["kind"]), str(row["status"])], row["n"])
    yield family


class BusinessCollector(Collector):
    """The ``locker_*`` families, computed from the database on every ``collect()`` (one scrape)."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now

    def collect(self) -> Iterator[Metric]:
        started = time.monotonic()
        now = self.now or timezone.now()
        yield from _payments()
        yield from _notifications()
        yield from _apply_lag(now)
        yield from _orders(now)
        yield from _refunds(now)
        yield from _discrepancies()
        yield GaugeMetricFamily(
            "locker_metrics_scrape_duration_seconds",
            "Time taken to compute the locker_* metrics.",
            value=round(time.monotonic() - started, 6),
        )


class _ProcessCollector(Collector):
    """This process's own registry (django-prometheus, process and Python metrics), outside gunicorn."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def scrape_registry(now: datetime | None = None) -> CollectorRegistry:
    """A registry for one scrape: the business collector plus the request / DB metrics of every
    gunicorn worker (``PROMETHEUS_MULTIPROC_DIR``) or of this process."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BusinessCollector(now))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessCollector())
    return registry


# --- The view ---------------------------------------------------------------------------------------
def _is_loopback(request: HttpRequest) -> bool:
    if any(request.META.get(header) for header in _PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def metrics_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if not token:
        return _is_loopback(request)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The exposition format the scraper asks for (``Accept``: Prometheus text or OpenMetrics)."""
    if not metrics_allowed(request):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain; charset=utf-8")
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(scrape_registry()), content_type=content_type)
