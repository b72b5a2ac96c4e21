"""Dashboard figures (paid and refunded per channel, success rate, queues) and their charts (pygal SVG)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from core.money import format_yuan
from finance.backoffice.charts import bar_chart
from orders.models import Order
from payments.models import Channel, Payment
from refunds.models import Refund


@dataclass(frozen=True)
class ChannelFigures:
    channel: str  # the code; ``label`` is what people read
    paid_fen: int
    paid_count: int
    refunded_fen: int
    started: int  # payments created in the window
    succeeded: int  # of those, succeeded

    @property
    def success_rate(self) -> str:
        return f"{self.succeeded * 100 / self.started:.1f}%" if self.started else "-"

    @property
    def label(self) -> str:
        return Channel(self.channel).label


@dataclass(frozen=True)
class Window:
    label: str
    since: datetime
    channels: list[ChannelFigures]

    @property
    def paid_fen(self) -> int:
        return sum(c.paid_fen for c in self.channels)

    @property
    def refunded_fen(self) -> int:
        return sum(c.refunded_fen for c in self.channels)

    @property
    def paid_yuan(self) -> str:
        return format_yuan(self.paid_fen)

    @property
    def refunded_yuan(self) -> str:
        return format_yuan(self.refunded_fen)

    @property
    def success_rate(self) -> str:
        started = sum(c.started for c in self.channels)
        succeeded = sum(c.succeeded for c in self.channels)
        return f"{succeeded * 100 / started:.1f}%" if started else "-"


def local_midnight(now: datetime) -> datetime:
    return timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)


def window_figures(label: str, since: datetime) -> Window:
    paid = {
        row["channel"]: row
        for row in Payment.objects.filter(status=Payment.Status.SUCCEEDED, paid_at__gte=since)
        .values("channel")
        .annotate(fen=Sum("amount_fen"), n=Count("id"))
    }
    refunded = {
        row["payment__channel"]: row["fen"]
        for row in Refund.objects.filter(status=Refund.Status.SUCCEEDED, succeeded_at__gte=since)
        .values("payment__channel")
        .annotate(fen=Sum("amount_fen"))
    }
    started = {
        row["channel"]: row
        for row in Payment.objects.filter(created_at__gte=since)
        .values("channel")
        .annotate(n=Count("id"), ok=Count("id", filter=Q(status=Payment.Status.SUCCEEDED)))
    }
    channels = [
        ChannelFigures(
            channel=channel,
            paid_fen=paid.get(channel, {}).get("fen") or 0,
            paid_count=paid.get(channel, {}).get("n") or 0,
            refunded_fen=refunded.get(channel) or 0,
            started=started.get(channel, {}).get("n") or 0,
            succeeded=started.get(channel, {}).get("ok") or 0,
        )
        for channel in Channel.values
    ]
    return Window(label=label, since=since, channels=channels)


def queues(now: datetime) -> dict[str, int]:
    awaiting = Refund.objects.filter(status=Refund.Status.REQUESTED).aggregate(n=Count("id"), fen=Sum("amount_fen"))
    abnormal = Refund.objects.filter(status=Refund.Status.ABNORMAL).aggregate(n=Count("id"), fen=Sum("amount_fen"))
    unknown = Refund.objects.filter(status=Refund.Status.PROCESSING, gateway_unknown_since__isnull=False).aggregate(
        n=Count("id"), fen=Sum("amount_fen")
    )
    owed = Order.objects.filter(  # abandoned rentals' overtime, recorded as owed (orders.abandoned)
        kind=Order.Kind.LOCKER_OVERTIME, status=Order.Status.PENDING_PAYMENT, parent__abandoned_at__isnull=False
    ).aggregate(n=Count("id"), fen=Sum("amount_fen"))
    return {
        "overtime_owed_count": owed["n"],
        "overtime_owed_fen": owed["fen"] or 0,
        "gateway_unknown_count": unknown["n"],
        "gateway_unknown_fen": unknown["fen"] or 0,
        "awaiting_count": awaiting["n"],
        "awaiting_fen": awaiting["fen"] or 0,
        "abnormal_count": abnormal["n"],
        "abnormal_fen": abnormal["fen"] or 0,
        "stuck_orders": Order.objects.filter(status=Order.Status.PENDING_PAYMENT, expires_at__lt=now).count(),
    }


def daily_paid(now: datetime, days: int = 30) -> list[tuple[str, int, int]]:
    """(day, paid fen, refunded fen) for each of the last ``days`` local days, oldest first."""
    first = local_midnight(now) - timedelta(days=days - 1)
    tz = timezone.get_current_timezone()
    paid = dict(
        Payment.objects.filter(status=Payment.Status.SUCCEEDED, paid_at__gte=first)
        .annotate(day=TruncDate("paid_at", tzinfo=tz))
        .values("day")
        .annotate(fen=Sum("amount_fen"))
        .values_list("day", "fen")
    )
    refunded = dict(
        Refund.objects.filter(status=Refund.Status.SUCCEEDED, succeeded_at__gte=first)
        .annotate(day=TruncDate("succeeded_at", tzinfo=tz))
        .values("day")
        .annotate(fen=Sum("amount_fen"))
        .values_list("day", "fen")
    )
    out = []
    for i in range(days):
        day = (first + timedelta(days=i)).date()
        out.append((day.strftime("%m-%d"), paid.get(day) or 0, refunded.get(day) or 0))
    return out


def dashboard_context(now: datetime | None = None) -> dict:
    now = now or timezone.now()
    midnight = local_midnight(now)
    windows = [
        window_figures("today", midnight),
        window_figures("7 days", midnight - timedelta(days=6)),
        window_figures("30 days", midnight - timedelta(days=29)),
    ]
    month = windows[2]
    daily = daily_paid(now)
    return {
        "windows": windows,
        "queues": queues(now),
        "channel_chart": bar_chart(
            [c.label for c in month.channels],
            {"paid": [c.paid_fen for c in month.channels], "refunded": [c.refunded_fen for c in month.channels]},
            title="30 days: paid and refunded per channel",
        ),
        "daily_chart": bar_chart(
            [label for label, _, _ in daily],
            {"paid": [p for _, p, _ in daily], "refunded": [r for _, _, r in daily]},
            title="Last 30 days: paid and refunded per day",
        ),
        "now": now,
    }
