"""``GET /metrics``: business gauges in the Prometheus text exposition format (version 0.0.4).

Everything is computed from the database when Prometheus scrapes, with a handful of aggregate
queries (no per-row loops), so it is the same answer from every gunicorn worker and process:
nothing is counted in memory. "Totals" are counts of rows, so they only go down when rows are
purged.

Access: with ``METRICS_TOKEN`` set, a scraper sends ``Authorization: Bearer <token>``; without a
token, only a request from loopback that did not come through a proxy is answered (a local
reverse proxy makes every request look local, so a forwarded request never counts as loopback).

Metric families (all gauges unless marked):

- ``locker_payments{channel,status}`` and ``locker_payments_amount_fen{channel,status}``
- ``locker_notifications_received_total{gateway}`` (counter), ``locker_notification_verify_failures_total{gateway}``
  (counter: inbox rows that failed verification), ``locker_notifications_unapplied{gateway}`` (verified, not
  applied, with an error)
- ``locker_notification_apply_lag_seconds`` (summary over notifications received in the last 24 h:
  ``processed_at - received_at``, quantiles 0.5/0.9/0.99, ``_sum``, ``_count``) and
  ``locker_notification_apply_lag_max_seconds``
- ``locker_orders_stuck{kind}`` (pending payment past ``expires_at``) and ``locker_orders_stuck_oldest_seconds{kind}``
- ``locker_refunds_open{status}``, ``locker_refunds_open_amount_fen{status}``, ``locker_refunds_overdue{status}``
  (in the same stage for longer than ``REFUND_STUCK_ALERT_HOURS``)
- ``locker_reconciliation_discrepancies{gateway,kind,status}`` (once the bill reconciliation table exists)
- ``locker_metrics_scrape_duration_seconds``
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import FieldError
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Min, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from orders.models import Order
from payments.models import CHANNEL_ROUTES, Channel, GatewayNotification, Payment
from refunds.models import Refund

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LAG_WINDOW = timedelta(hours=24)
LAG_QUANTILES = (0.5, 0.9, 0.99)
OPEN_REFUND_STATUSES = (
    Refund.Status.REQUESTED,
    Refund.Status.APPROVED,
    Refund.Status.PROCESSING,
    Refund.Status.ABNORMAL,
)
GATEWAYS = sorted({gateway for gateway, _ in CHANNEL_ROUTES.values()} - {"wallet"})
_PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_FORWARDED")


# --- The exposition format ------------------------------------------------------------------------
@dataclass
class MetricFamily:
    name: str
    kind: str  # gauge | counter | summary
    help: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def add(self, value: Any, suffix: str = "", **labels: str) -> None:
        self.samples.append((suffix, labels, _number(value)))


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_value(value: float) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render(families: Iterable[MetricFamily]) -> str:
    lines: list[str] = []
    for family in families:
        help_text = family.help.replace("\\", "\\\\").replace("\n", "\\n")
        lines.append(f"# HELP {family.name} {help_text}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for suffix, labels, value in family.samples:
            label_text = ",".join(f'{key}="{_escape_label(str(val))}"' for key, val in labels.items())
            name = family.name + suffix
            lines.append(
                f"{name}{{{label_text}}} {_format_value(value)}" if labels else f"{name} {_format_value(value)}"
            )
    return "\n".join(lines) + "\n"


# --- The queries (one or two per family, all aggregates) -------------------------------------------
def _payments() -> list[MetricFamily]:
    count = MetricFamily("locker_payments", "gauge", "Payments by channel and status.")
    amount = MetricFamily("locker_payments_amount_fen", "gauge", "Sum of payment amounts (fen) by channel and status.")
    rows = {
        (row["channel"], row["status"]): row
        for row in Payment.objects.order_by().values("channel", "status").annotate(n=Count("id"), fen=Sum("amount_fen"))
    }
    keys = {(c, s) for c in Channel.values for s in Payment.Status.values} | set(rows)
    for channel, status in sorted(keys):
        row = rows.get((channel, status), {})
        count.add(row.get("n", 0), channel=channel, status=status)
        amount.add(row.get("fen") or 0, channel=channel, status=status)
    return [count, amount]


def _notifications() -> list[MetricFamily]:
    received = MetricFamily(
        "locker_notifications_received_total", "counter", "Gateway notifications stored in the inbox, by gateway."
    )
    failures = MetricFamily(
        "locker_notification_verify_failures_total",
        "counter",
        "Inbox rows that were not verified (bad signature, certificate, timestamp, ids or amount; "
        "unconfigured gateway).",
    )
    unapplied = MetricFamily(
        "locker_notifications_unapplied", "gauge", "Verified notifications that could not be applied (error kept)."
    )
    rows = {
        row["gateway"]: row
        for row in GatewayNotification.objects.order_by()
        .values("gateway")
        .annotate(
            n=Count("id"),
            unverified=Count("id", filter=Q(verified=False)),
            unapplied=Count("id", filter=Q(verified=True, processed_at__isnull=True) & ~Q(error="")),
        )
    }
    for gateway in sorted(set(GATEWAYS) | set(rows)):
        row = rows.get(gateway, {})
        received.add(row.get("n", 0), gateway=gateway)
        failures.add(row.get("unverified", 0), gateway=gateway)
        unapplied.add(row.get("unapplied", 0), gateway=gateway)
    return [received, failures, unapplied]


def _apply_lag(now: datetime) -> list[MetricFamily]:
    """Notify-to-apply lag of notifications applied (not duplicates) and received in the window."""
    lag = MetricFamily(
        "locker_notification_apply_lag_seconds",
        "summary",
        "Seconds from receiving a gateway notification to applying it, notifications received in the last 24 h.",
    )
    worst = MetricFamily(
        "locker_notification_apply_lag_max_seconds", "gauge", "Longest notify-to-apply lag in the last 24 h."
    )
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
    for q, value in zip(LAG_QUANTILES, quantiles or [None] * len(LAG_QUANTILES), strict=True):
        lag.add(value, quantile=str(q))
    lag.add(total, "_sum")
    lag.add(count, "_count")
    worst.add(longest if longest is not None else 0)
    return [lag, worst]


def _orders(now: datetime) -> list[MetricFamily]:
    stuck = MetricFamily(
        "locker_orders_stuck", "gauge", "Orders still pending payment after expires_at (the expiry job is behind)."
    )
    oldest = MetricFamily(
        "locker_orders_stuck_oldest_seconds", "gauge", "Seconds since the oldest stuck order expired (0: none)."
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
        stuck.add(row["n"] if row else 0, kind=kind)
        oldest.add((now - row["first"]).total_seconds() if row else 0, kind=kind)
    return [stuck, oldest]


def _refunds(now: datetime) -> list[MetricFamily]:
    hours = getattr(settings, "REFUND_STUCK_ALERT_HOURS", 24)
    limit = now - timedelta(hours=hours)
    S = Refund.Status
    # how long a refund has been in its current stage: since it was asked for, decided or sent
    overdue_q = (
        Q(status=S.REQUESTED, created_at__lte=limit)
        | Q(status=S.APPROVED, decided_at__lte=limit)
        | Q(status__in=(S.PROCESSING, S.ABNORMAL), submitted_at__lte=limit)
    )
    open_ = MetricFamily(
        "locker_refunds_open",
        "gauge",
        "Refunds not finished: requested (awaiting approval), approved, processing, abnormal.",
    )
    amount = MetricFamily("locker_refunds_open_amount_fen", "gauge", "Sum of open refund amounts (fen) by status.")
    overdue = MetricFamily(
        "locker_refunds_overdue",
        "gauge",
        f"Open refunds in the same stage for more than REFUND_STUCK_ALERT_HOURS ({hours} h).",
    )
    rows = {
        row["status"]: row
        for row in Refund.objects.order_by()
        .filter(status__in=OPEN_REFUND_STATUSES)
        .values("status")
        .annotate(n=Count("id"), fen=Sum("amount_fen"), late=Count("id", filter=overdue_q))
    }
    for status in OPEN_REFUND_STATUSES:
        row = rows.get(status, {})
        open_.add(row.get("n", 0), status=status)
        amount.add(row.get("fen") or 0, status=status)
        overdue.add(row.get("late", 0), status=status)
    return [open_, amount, overdue]


def _model_or_none(app_label: str, model_name: str) -> Any:
    try:
        return apps.get_model(app_label, model_name)
    except LookupError:
        return None


def _discrepancies() -> list[MetricFamily]:
    """Bill reconciliation discrepancies; nothing until the model and its table exist."""
    family = MetricFamily(
        "locker_reconciliation_discrepancies",
        "gauge",
        "Differences between the gateways' bills and our records, by gateway, kind and status.",
    )
    model = _model_or_none("refunds", "BillDiscrepancy")
    if model is None:
        return [family]
    try:
        with transaction.atomic():  # a savepoint: a missing table must not break the caller's transaction
            rows = list(model.objects.order_by().values("gateway", "kind", "status").annotate(n=Count("pk")))
    except (DatabaseError, FieldError) as exc:
        logger.warning("metrics: bill discrepancies unavailable: %s", exc)
        return [family]
    for row in sorted(rows, key=lambda r: (str(r["gateway"]), str(r["kind"]), str(r["status"]))):
        family.add(row["n"], gateway=str(row["gateway"]), kind=str(row["kind"]), status=str(row["status"]))
    return [family]


def collect(now: datetime | None = None) -> list[MetricFamily]:
    started = time.monotonic()
    now = now or timezone.now()
    families = [
        *_payments(),
        *_notifications(),
        *_apply_lag(now),
        *_orders(now),
        *_refunds(now),
        *_discrepancies(),
    ]
    duration = MetricFamily("locker_metrics_scrape_duration_seconds", "gauge", "Time taken to compute these metrics.")
    duration.add(round(time.monotonic() - started, 6))
    return [*families, duration]


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
    if not metrics_allowed(request):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain; charset=utf-8")
    return HttpResponse(render(collect()), content_type=CONTENT_TYPE)
