"""The settlement report: per day and channel, what was paid, refunded, kept by the gateway as fees,
and what is left to be settled to us; and, per day and gateway, whether the bill's own totals agree.

Definitions (all integer fen; days are ``settings.TIME_ZONE`` days, the day the gateways' bills use):

* gross: our succeeded payments, by the day they were paid (``paid_at``);
* refunds: our succeeded refunds, by the day they succeeded (``succeeded_at``);
* fees: the gateway's fee on each of those payments and refunds, as its bill states it
  (``BillLine.fee_fen``: kept on a payment, given back with a refund), whichever day's bill listed
  it; the wallet has none. Until a bill lists an item its fee is unknown: the row counts it as
  ``unbilled`` and is provisional;
* net = gross - refunds - fees: what the gateway owes us for the day.

Net settled is what the gateways settle to us, so only the gateways' channels count in it. The
wallet's money reached us when it was topped up, through a gateway (a top-up is a payment on a
gateway's channel, counted there); spending it later (a rental paid from the wallet) and refunds
back to it move money inside this system only. Those are shown apart (``SettlementReport.wallet_rows``:
wallet spending, internal, no gateway settles it) and kept out of every settled total.

The bill check of a (day, gateway) comes from its reconciliation run (``BillRun.totals``, see
``finance.bills``): the bill's stated totals against ours on the bill's basis, and any open
``total_mismatch`` discrepancy. Reads only; nothing here writes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from finance.bills import FIGURES, bill_gateways
from finance.models import BillDiscrepancy, BillLine, BillRun
from payments.models import CHANNEL_ROUTES, Channel, Payment
from refunds.models import Refund

MAX_DAYS = 92


@dataclass(frozen=True)
class Figures:
    """Gross, refunds and fees of a row, a day or a period (fen); net follows from them."""

    gross_fen: int = 0
    refunds_fen: int = 0
    fees_fen: int = 0
    payments: int = 0
    refund_count: int = 0
    unbilled: int = 0  # payments and refunds whose fee no bill has stated yet

    @property
    def net_fen(self) -> int:
        return self.gross_fen - self.refunds_fen - self.fees_fen

    def __add__(self, other: Figures) -> Figures:
        return Figures(
            self.gross_fen + other.gross_fen,
            self.refunds_fen + other.refunds_fen,
            self.fees_fen + other.fees_fen,
            self.payments + other.payments,
            self.refund_count + other.refund_count,
            self.unbilled + other.unbilled,
        )

    def figure(self, name: str) -> int:
        return {"gross": self.gross_fen, "refunds": self.refunds_fen, "fees": self.fees_fen, "net": self.net_fen}[name]


@dataclass(frozen=True)
class SettlementRow:
    day: date
    channel: str
    figures: Figures

    @property
    def gateway(self) -> str:
        return CHANNEL_ROUTES[self.channel][0]


@dataclass(frozen=True)
class BillCheck:
    """One (day, gateway): the reconciliation run's settlement check, if it ran, and the day's
    discrepancies still open (any kind: a payment missing from the bill as well as a total)."""

    day: date
    gateway: str
    run: BillRun | None
    open_mismatches: list[BillDiscrepancy]  # the day totals that differ (they decide ``state``)
    open_discrepancies: int = 0  # every discrepancy of the day and gateway not resolved yet

    @property
    def state(self) -> str:
        """``reconciled`` | ``discrepancy`` | ``failed`` | ``not reconciled``."""
        if self.open_mismatches:
            return "discrepancy"
        if self.run is None or self.run.status in (BillRun.Status.PENDING, BillRun.Status.RUNNING):
            return "not reconciled"
        if self.run.status == BillRun.Status.FAILED:
            return "failed"
        return "discrepancy" if self.run.totals.get("mismatches") else "reconciled"

    def side(self, which: str) -> dict[str, int | None]:
        """The bill's figures (``"bill"``) or ours on its basis (``"ours"``), fen; ``{}`` before a run."""
        return dict(self.run.totals.get(which) or {}) if self.run is not None else {}

    @property
    def differences(self) -> dict[str, int]:
        """Ours minus the bill's, per figure the bill states."""
        bill, ours = self.side("bill"), self.side("ours")
        return {f: ours[f] - bill[f] for f in FIGURES if bill.get(f) is not None and ours.get(f) is not None}


@dataclass
class SettlementReport:
    """``rows``: the gateways' channels (what they settle to us; every total is over these);
    ``wallet_rows``: spending from the wallet and refunds to it, internal, settled by no gateway."""

    date_from: date
    date_to: date
    rows: list[SettlementRow]
    checks: list[BillCheck]
    wallet_rows: list[SettlementRow] = field(default_factory=list)
    by_day: dict[date, Figures] = field(default_factory=dict)

    def __post_init__(self) -> None:
        days: dict[date, Figures] = defaultdict(Figures)
        for row in self.rows:
            days[row.day] = days[row.day] + row.figures
        self.by_day = dict(sorted(days.items()))

    @property
    def wallet_total(self) -> Figures:
        return sum((row.figures for row in self.wallet_rows), Figures())

    def wallet_of(self, day: date) -> Figures | None:
        return next((row.figures for row in self.wallet_rows if row.day == day), None)

    @property
    def total(self) -> Figures:
        return sum((row.figures for row in self.rows), Figures())

    def by_channel(self) -> dict[str, Figures]:
        channels: dict[str, Figures] = defaultdict(Figures)
        for row in self.rows:
            channels[row.channel] = channels[row.channel] + row.figures
        return dict(channels)

    def rows_of(self, day: date) -> list[SettlementRow]:
        return [row for row in self.rows if row.day == day]

    def checks_of(self, day: date) -> list[BillCheck]:
        return [check for check in self.checks if check.day == day]

    def gateway_figures(self, day: date, gateway: str) -> Figures:
        """The day's figures over the gateway's channels (what its bill covers)."""
        return sum((r.figures for r in self.rows_of(day) if r.gateway == gateway), Figures())


def local_bounds(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    """[start of ``date_from``, start of the day after ``date_to``) in ``settings.TIME_ZONE``."""
    tz = timezone.get_current_timezone()
    start = datetime.combine(date_from, time.min, tzinfo=tz)
    end = datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=tz)
    return start, end


def _fee(kind: str, reference: str) -> Subquery:
    """The fee the latest bill that lists this payment (refund) states for it, or NULL."""
    line = BillLine.objects.filter(kind=kind, reference=OuterRef(reference)).order_by("-bill_date")
    return Subquery(line.values("fee_fen")[:1], output_field=IntegerField())


def _grouped(qs: QuerySet, *, at: str, channel: str, kind: str, reference: str, start, end) -> list[dict]:
    tz = timezone.get_current_timezone()
    gateway_channels = [c for c in Channel.values if c != Channel.WALLET]
    return list(
        qs.filter(**{f"{at}__gte": start, f"{at}__lt": end})
        .annotate(day=TruncDate(at, tzinfo=tz), fee=_fee(kind, reference))
        .values("day", channel)
        .annotate(
            n=Count("id"),
            fen=Sum("amount_fen"),
            fees=Sum("fee"),
            unbilled=Count("id", filter=Q(fee__isnull=True, **{f"{channel}__in": gateway_channels})),
        )
        .order_by("day", channel)
    )


def settlement_report(*, date_from: date, date_to: date) -> SettlementReport:
    """The report of ``date_from`` through ``date_to`` (both included, ``TIME_ZONE`` days).

    Raises ``ValueError`` for an empty or longer-than-``MAX_DAYS`` range. Five queries, whatever
    the number of payments."""
    if date_to < date_from or (date_to - date_from).days >= MAX_DAYS:
        raise ValueError(f"choose 1 to {MAX_DAYS} days, the first not after the last")
    start, end = local_bounds(date_from, date_to)
    cells: dict[tuple[date, str], Figures] = defaultdict(Figures)
    paid = Payment.objects.filter(status=Payment.Status.SUCCEEDED)
    for g in _grouped(
        paid, at="paid_at", channel="channel", kind="payment", reference="payment_no", start=start, end=end
    ):
        cells[(g["day"], g["channel"])] += Figures(
            gross_fen=g["fen"] or 0, fees_fen=g["fees"] or 0, payments=g["n"], unbilled=g["unbilled"]
        )
    refunded = Refund.objects.filter(status=Refund.Status.SUCCEEDED)
    for g in _grouped(
        refunded,
        at="succeeded_at",
        channel="payment__channel",
        kind="refund",
        reference="refund_no",
        start=start,
        end=end,
    ):
        cells[(g["day"], g["payment__channel"])] += Figures(
            refunds_fen=g["fen"] or 0, fees_fen=g["fees"] or 0, refund_count=g["n"], unbilled=g["unbilled"]
        )
    order = {channel: i for i, channel in enumerate(Channel.values)}
    rows = [
        SettlementRow(day=day, channel=channel, figures=figures)
        for (day, channel), figures in sorted(cells.items(), key=lambda item: (item[0][0], order[item[0][1]]))
    ]
    return SettlementReport(
        date_from,
        date_to,
        rows=[row for row in rows if row.channel != Channel.WALLET],
        checks=bill_checks(date_from=date_from, date_to=date_to),
        wallet_rows=[row for row in rows if row.channel == Channel.WALLET],
    )


def bill_checks(*, date_from: date, date_to: date) -> list[BillCheck]:
    """Every (day, gateway) of the range for the reconciled gateways, oldest first (three queries)."""
    gateways = bill_gateways()
    runs = {
        (run.bill_date, run.gateway): run
        for run in BillRun.objects.filter(bill_date__range=(date_from, date_to), gateway__in=gateways)
    }
    open_totals: dict[tuple[date, str], list[BillDiscrepancy]] = defaultdict(list)
    for d in BillDiscrepancy.objects.filter(
        kind=BillDiscrepancy.Kind.TOTAL_MISMATCH, bill_date__range=(date_from, date_to), gateway__in=gateways
    ).exclude(status=BillDiscrepancy.Status.RESOLVED):
        open_totals[(d.bill_date, d.gateway)].append(d)
    still_open = {
        (row["bill_date"], row["gateway"]): row["n"]
        for row in BillDiscrepancy.objects.filter(bill_date__range=(date_from, date_to), gateway__in=gateways)
        .exclude(status=BillDiscrepancy.Status.RESOLVED)
        .values("bill_date", "gateway")
        .annotate(n=Count("id"))
    }
    days = [date_from + timedelta(days=i) for i in range((date_to - date_from).days + 1)]
    return [
        BillCheck(
            day=day,
            gateway=gateway,
            run=runs.get((day, gateway)),
            open_mismatches=open_totals[(day, gateway)],
            open_discrepancies=still_open.get((day, gateway), 0),
        )
        for day in days
        for gateway in gateways
    ]
