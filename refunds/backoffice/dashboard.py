"""Dashboard figures (paid and refunded per channel, success rate, queues) and server-rendered SVG charts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from orders.models import Order
from payments.models import Channel, Payment
from refunds.backoffice.money import yuan
from refunds.models import Refund


@dataclass(frozen=True)
class ChannelFigures:
    channel: str
    paid_fen: int
    paid_count: int
    refunded_fen: int
    started: int  # payments created in the window
    succeeded: int  # of those, succeeded

    @property
    def success_rate(self) -> str:
        return f"{self.succeeded * 100 / self.started:.1f}%" if self.started else "-"


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
        return yuan(self.paid_fen)

    @property
    def refunded_yuan(self) -> str:
        return yuan(self.refunded_fen)

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
    return {
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


# --- SVG (no JavaScript, no CDN) ------------------------------------------------------------------

PAID_COLOUR = "#417690"
REFUND_COLOUR = "#ba2121"


def bar_chart(series: list[tuple[str, int, int]], *, title: str, width: int = 720, height: int = 220) -> SafeString:
    """Grouped bars (paid, refunded) per label. Numbers are computed here; labels are escaped."""
    top = max([max(p, r) for _, p, r in series] + [1])
    left, bottom, right, head = 70, 40, 10, 24
    plot_w, plot_h = width - left - right, height - bottom - head
    slot = plot_w / max(len(series), 1)
    bar = max(slot * 0.38, 1)
    bars = []
    for i, (label, paid, refunded) in enumerate(series):
        x = left + i * slot + slot * 0.1
        for offset, value, colour, kind in ((0, paid, PAID_COLOUR, "paid"), (bar, refunded, REFUND_COLOUR, "refunded")):
            h = plot_h * value / top
            bars.append(
                (
                    f"{x + offset:.1f}",
                    f"{head + plot_h - h:.1f}",
                    f"{bar:.1f}",
                    f"{h:.1f}",
                    colour,
                    f"{label} {kind}: {yuan(value)}",
                )
            )
    rects = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>',
        bars,
    )
    every = max(1, len(series) // 10)
    labels = format_html_join(
        "",
        '<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>',
        (
            (f"{left + i * slot + slot / 2:.1f}", head + plot_h + 14, label)
            for i, (label, _, _) in enumerate(series)
            if i % every == 0
        ),
    )
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{title}" class="bo-chart" '
        'width="{w}" height="{h}" viewBox="0 0 {w} {h}">'
        '<text x="{left}" y="14" font-size="12" font-weight="bold">{title}</text>'
        '<line x1="{left}" y1="{base}" x2="{end}" y2="{base}" stroke="#999"/>'
        '<text x="{axis_x}" y="{top_y}" font-size="10" text-anchor="end">{top}</text>'
        '<text x="{axis_x}" y="{base}" font-size="10" text-anchor="end">0</text>'
        "{rects}{labels}"
        '<rect x="{left}" y="{legend_y}" width="10" height="10" fill="{paid_colour}"/>'
        '<text x="{legend_text}" y="{legend_base}" font-size="10">paid</text>'
        '<rect x="{legend2}" y="{legend_y}" width="10" height="10" fill="{refund_colour}"/>'
        '<text x="{legend2_text}" y="{legend_base}" font-size="10">refunded</text>'
        "</svg>",
        title=title,
        w=width,
        h=height,
        left=left,
        base=head + plot_h,
        end=width - right,
        axis_x=left - 4,
        top_y=head + 8,
        top=yuan(top),
        rects=rects,
        labels=labels,
        legend_y=height - 14,
        legend_base=height - 5,
        legend_text=left + 14,
        legend2=left + 60,
        legend2_text=left + 74,
        paid_colour=PAID_COLOUR,
        refund_colour=REFUND_COLOUR,
    )


def dashboard_context(now: datetime | None = None) -> dict:
    now = now or timezone.now()
    midnight = local_midnight(now)
    windows = [
        window_figures("today", midnight),
        window_figures("7 days", midnight - timedelta(days=6)),
        window_figures("30 days", midnight - timedelta(days=29)),
    ]
    month = windows[2]
    return {
        "windows": windows,
        "queues": queues(now),
        "channel_chart": bar_chart(
            [(c.channel, c.paid_fen, c.refunded_fen) for c in month.channels],
            title="30 days: paid and refunded per channel (yuan)",
        ),
        "daily_chart": bar_chart(daily_paid(now), title="Last 30 days: paid and refunded per day (yuan)"),
        "now": now,
    }
