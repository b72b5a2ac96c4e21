"""Daily bill reconciliation: the gateways' trade bills against our payments and refunds.

For one ``(gateway, bill_date)`` a ``BillRun`` is claimed by one worker
(``select_for_update(skip_locked=True)`` + a lease, so several workers share the runs and a crashed
worker's run is taken over). The worker downloads the bill (gateway I/O outside any transaction),
stores its lines (``BillLine``) and matches both ways, batch by batch, each batch in its own
transaction with a bounded number of queries:

* theirs -> ours, per bill line (key: ``out_trade_no`` = our ``payment_no``, ``out_refund_no`` =
  our ``refund_no``): no local row, or a payment we still think open -> ``missing_local``; our
  status differs from the bill's -> ``status_mismatch``; our amount differs -> ``amount_mismatch``.
* ours -> theirs: payments ``succeeded`` (any channel of that gateway; never the wallet) with
  ``paid_at`` on the day (Asia/Shanghai), refunds ``succeeded`` with ``succeeded_at`` on the day.
  One in no bill of the days around it -> ``missing_remote``; within ``BILL_CROSS_MIDNIGHT_SECONDS``
  of midnight it is ``held`` (the gateway may book it on the neighbouring day) until the bill of
  ``bill_date + BILL_HOLD_DAYS`` is reconciled, then opened. A neighbouring bill that lists it
  resolves it.
* the settlement check (``_settlement_check``): the bill's own totals (gross, refunds, fees, net)
  against ours on the bill's basis: our amount of every row it lists that we know as settled by
  this gateway, plus what we settled that day and no bill of the days around lists (not held),
  and the fees of its rows. A figure that differs -> ``total_mismatch`` (reference
  ``<day>:<figure>``), in the same workflow. The figures are kept on the run (``BillRun.totals``)
  for the settlement report.

Idempotent: discrepancies are unique per ``(gateway, kind, reference)`` and upserted (``last_seen``
moves); one that a re-run no longer finds is resolved with a note. A crash mid-batch rolls that
batch back; the next worker redoes the run under a new token.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from core.audit import Actor
from core.errors import ValidationFailed
from core.transitions import transition_many, transitions_audit
from finance.models import BillDiscrepancy, BillLine, BillRun
from payments.gateways.bills import BillEntry, BillSource, BillTotals, bill_totals
from payments.gateways.registry import get_gateway
from payments.gateways.trust import FieldMismatch, check_refund, check_trade, refund_expectations, trade_expectations
from payments.models import CHANNEL_ROUTES, Payment
from payments.payscore import bill_entries_as_ours
from refunds.models import Refund

logger = logging.getLogger(__name__)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BILL_GATEWAYS = ("wechat", "alipay", "wallyt")  # the gateways that publish daily trade bills
FIGURES = ("gross", "refunds", "fees", "net")  # the settlement figures checked against the bill's totals
Kind = BillDiscrepancy.Kind
DStatus = BillDiscrepancy.Status
JOB = Actor.system("bills")  # the reconciliation job, in the audit trail
RStatus = BillRun.Status


def bill_gateways() -> tuple[str, ...]:
    """``BILL_RECONCILE_GATEWAYS`` (default: WeChat, Alipay and Wallyt); leave out a gateway not in use."""
    return tuple(settings.BILL_RECONCILE_GATEWAYS)


def hold_days() -> int:
    return settings.BILL_HOLD_DAYS


def cross_midnight_seconds() -> int:
    return settings.BILL_CROSS_MIDNIGHT_SECONDS


def batch_size() -> int:
    return settings.BILL_BATCH_SIZE


def lease_seconds() -> int:
    return settings.BILL_LEASE_SECONDS


@dataclass(frozen=True)
class Progress:
    gateway: str
    bill_date: date
    phase: str  # download | lines | theirs | ours | finish
    done: int
    total: int


ProgressFn = Callable[[Progress], None]


class LeaseLost(Exception):
    """Another worker took the run over (ours looked dead): stop without writing more."""


@dataclass(frozen=True)
class Finding:
    kind: str
    subject: str  # payment | refund
    reference: str
    our_amount_fen: int | None
    their_amount_fen: int | None
    our_status: str
    their_status: str
    status: str = DStatus.OPEN
    held_until: date | None = None


def yesterday(now: datetime) -> date:
    """The bill day a daily job reconciles: yesterday in Asia/Shanghai."""
    return (now.astimezone(SHANGHAI) - timedelta(days=1)).date()


def bill_date_check(bill_date: date, now: datetime) -> None:
    """Refuse a bill day that is not over: ``bill_date`` must be before today in Asia/Shanghai.

    The gateways publish a day's bill the next morning (WeChat: after 10:00 the next day,
    ``/doc/v3/merchant/4012084430``; Alipay: T+1; PROTOCOLS F.4), so a bill of today
    would miss the rest of the day's payments and a done run is never redone. Today is taken at the
    earlier of ``now`` and the real clock (a ``now`` in the future does not make a day over).
    Raises ``ValidationFailed`` (code ``bill_not_published``) naming the day and the first day its
    bill may be reconciled.
    """
    today = min(now, timezone.now()).astimezone(SHANGHAI).date()
    if bill_date < today:
        return
    first = bill_date + timedelta(days=1)
    raise ValidationFailed(
        f"The bill of {bill_date} is not published yet (the day is not over in Asia/Shanghai, today is {today}): "
        f"it can be reconciled from {first}; the latest bill day now is {today - timedelta(days=1)}.",
        code="bill_not_published",
        details={"bill_date": str(bill_date), "first_allowed": str(first), "today": str(today)},
    )


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=SHANGHAI)
    return start, start + timedelta(days=1)


def _channels(gateway: str) -> list[str]:
    return [str(channel) for channel, (name, _) in CHANNEL_ROUTES.items() if name == gateway]


# --------------------------------------------------------------------------- the job


def bill_reconcile(
    *,
    bill_date: date,
    now: datetime,
    gateways: Sequence[str] | None = None,
    force: bool = False,
    worker: str = "",
    progress: ProgressFn | None = None,
) -> list[BillRun]:
    """Reconcile every pending (or failed, or abandoned) run of ``bill_date``; with ``force`` also
    runs already done before ``now``. Returns the runs this call worked on (a run another worker
    holds is skipped). A run that fails is marked ``failed`` with its error and retried next time.
    Raises ``ValidationFailed`` for a ``bill_date`` not before today in Asia/Shanghai
    (``bill_date_check``), before any gateway call and without writing a run."""
    bill_date_check(bill_date, now)
    names = list(gateways or bill_gateways())
    for name in names:
        BillRun.objects.get_or_create(gateway=name, bill_date=bill_date)
    worker = worker or f"pid-{uuid.uuid4().hex[:8]}"
    tried: list[int] = []
    while (run := _claim(names, bill_date, now=now, force=force, worker=worker, exclude=tried)) is not None:
        tried.append(run.pk)
        _execute(run, now=now, progress=progress)
    return list(BillRun.objects.filter(pk__in=tried).order_by("gateway"))


@transaction.atomic
def _claim(
    names: list[str], bill_date: date, *, now: datetime, force: bool, worker: str, exclude: list[int]
) -> BillRun | None:
    due = Q(status__in=(RStatus.PENDING, RStatus.FAILED)) | Q(status=RStatus.RUNNING, lease_until__lt=timezone.now())
    if force:
        due |= Q(status=RStatus.DONE, started_at__lt=now)
    run = (
        BillRun.objects.select_for_update(skip_locked=True)
        .filter(due, gateway__in=names, bill_date=bill_date)
        .exclude(pk__in=exclude)
        .order_by("gateway")
        .first()
    )
    if run is None:
        return None
    run.status = RStatus.RUNNING
    run.attempts += 1
    run.token = uuid.uuid4().hex
    run.worker = worker[:80]
    run.lease_until = timezone.now() + timedelta(seconds=lease_seconds())
    run.started_at, run.finished_at, run.error = now, None, ""
    run.save()
    logger.info("bill %s %s: claimed by %s (attempt %s)", run.gateway, run.bill_date, worker, run.attempts)
    return run


def _execute(run: BillRun, *, now: datetime, progress: ProgressFn | None) -> None:
    report = _reporter(run, progress)
    try:
        report("download", 0, 1)
        gateway = cast(BillSource, get_gateway(run.gateway))
        entries = gateway.bill(run.bill_date)  # gateway I/O: no transaction open
        entries = bill_entries_as_ours(entries)  # Pay Score collections: WeChat's out_trade_no -> our payment_no
        report("download", 1, 1)
        counts, totals = _reconcile(run, entries, now=now, report=report)
    except LeaseLost:
        logger.warning("bill %s %s: lease lost to another worker; stopping", run.gateway, run.bill_date)
        return
    except Exception as exc:  # any failure leaves the run failed (retried), never done
        logger.warning("bill %s %s: failed: %s", run.gateway, run.bill_date, exc, exc_info=True)
        BillRun.objects.filter(pk=run.pk, token=run.token).update(
            status=RStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], lease_until=None
        )
        return
    updated = BillRun.objects.filter(pk=run.pk, token=run.token).update(
        status=RStatus.DONE,
        counts=counts,
        totals=totals,
        finished_at=now,
        lease_until=None,
    )
    if updated:
        logger.info("bill %s %s: done %s", run.gateway, run.bill_date, counts)
        report("finish", 1, 1)


def _reporter(run: BillRun, progress: ProgressFn | None) -> Callable[[str, int, int], None]:
    def report(phase: str, done: int, total: int) -> None:
        if phase in ("theirs", "ours", "lines"):
            logger.info("bill %s %s: %s %s/%s", run.gateway, run.bill_date, phase, done, total)
        if progress is not None:
            progress(Progress(run.gateway, run.bill_date, phase, done, total))

    return report


def _heartbeat(run: BillRun) -> None:
    """Extend the lease at the start of each batch's transaction (the run row stays locked until the
    batch commits, so nobody takes the run over mid-batch); a run taken over already stops here."""
    lease = timezone.now() + timedelta(seconds=lease_seconds())
    if not BillRun.objects.filter(pk=run.pk, token=run.token, status=RStatus.RUNNING).update(lease_until=lease):
        raise LeaseLost(run.pk)


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _reconcile(run: BillRun, entries: list[BillEntry], *, now: datetime, report) -> tuple[dict[str, int], dict]:
    """Store the bill's lines, match both ways, check the settlement totals; -> (counts, totals)."""
    size = batch_size()
    found: Counter[str] = Counter()
    for i, chunk in enumerate(_chunks(entries, size)):
        with transaction.atomic():
            _heartbeat(run)
            _store_lines(run, chunk)
        report("lines", min((i + 1) * size, len(entries)), len(entries))
    _delete_stale_lines(run, entries)
    done = 0
    last_id = 0
    while True:
        with transaction.atomic():
            _heartbeat(run)
            lines = list(
                BillLine.objects.select_for_update(skip_locked=True)
                .filter(gateway=run.gateway, bill_date=run.bill_date, id__gt=last_id)
                .order_by("id")[:size]
            )
            if not lines:
                break
            last_id = lines[-1].pk
            found.update(_theirs_batch(run, lines, now=now))
        done += len(lines)
        report("theirs", done, len(entries))
    for subject in ("payment", "refund"):
        found.update(_ours_pass(run, subject, now=now, report=report))
    with transaction.atomic():
        _heartbeat(run)
        totals, findings = _settlement_check(run, entries)
        _record(run, findings, now=now)
        found.update(str(f.kind) for f in findings)
        found.update(_finish(run, now=now))
    kinds = Counter(e.kind for e in entries)
    counts = {"bill_payments": kinds["payment"], "bill_refunds": kinds["refund"], **dict(found)}
    return counts, totals


def _store_lines(run: BillRun, entries: Sequence[BillEntry]) -> None:
    rows = {
        (e.kind, e.reference): BillLine(
            gateway=run.gateway,
            bill_date=run.bill_date,
            kind=e.kind,
            reference=e.reference,
            out_trade_no=e.out_trade_no,
            amount_fen=e.amount_fen,
            status=e.status,
            occurred_at=e.occurred_at,
            gateway_trade_no=e.gateway_trade_no,
            fee_fen=e.fee_fen,
            identity=e.identity,
        )
        for e in entries
    }
    BillLine.objects.bulk_create(
        rows.values(),
        update_conflicts=True,
        unique_fields=("gateway", "bill_date", "kind", "reference"),
        update_fields=(
            "out_trade_no",
            "amount_fen",
            "status",
            "occurred_at",
            "gateway_trade_no",
            "identity",
            "fee_fen",
        ),
    )


def _delete_stale_lines(run: BillRun, entries: list[BillEntry]) -> None:
    """Lines an earlier attempt stored that this bill no longer has (one query per batch)."""
    wanted = {(e.kind, e.reference) for e in entries}
    last_id = 0
    while True:
        rows = list(
            BillLine.objects.filter(gateway=run.gateway, bill_date=run.bill_date, id__gt=last_id)
            .order_by("id")
            .values_list("id", "kind", "reference")[: batch_size()]
        )
        if not rows:
            return
        last_id = rows[-1][0]
        stale = [pk for pk, kind, ref in rows if (kind, ref) not in wanted]
        if stale:
            BillLine.objects.filter(pk__in=stale).delete()


# --------------------------------------------------------------------------- matching


def _theirs_batch(run: BillRun, lines: list[BillLine], *, now: datetime) -> Counter[str]:
    pay_refs = [line.reference for line in lines if line.kind == "payment"]
    refund_refs = [line.reference for line in lines if line.kind == "refund"]
    payments = {
        p.payment_no: p
        for p in Payment.objects.filter(payment_no__in=pay_refs).only("payment_no", "status", "amount_fen", "channel")
    }
    refunds = {
        r.refund_no: r
        for r in Refund.objects.filter(refund_no__in=refund_refs)
        .select_related("payment")
        .only("refund_no", "status", "amount_fen", "payment__channel", "payment__payment_no", "payment__amount_fen")
    }
    findings: list[Finding] = []
    for line in lines:
        local = payments.get(line.reference) if line.kind == "payment" else refunds.get(line.reference)
        findings += classify_line(line, local, gateway=run.gateway)
    _record(run, findings, now=now)
    _transition(
        BillDiscrepancy.objects.filter(
            gateway=run.gateway, kind=Kind.MISSING_REMOTE, reference__in=pay_refs + refund_refs
        )
        .exclude(status=DStatus.RESOLVED)
        .exclude(bill_date=run.bill_date),
        to=DStatus.RESOLVED,
        note=f"found in the {run.gateway} bill of {run.bill_date} (booked across midnight)",
        now=now,
    )
    return Counter(str(f.kind) for f in findings)


def classify_line(line: BillLine | BillEntry, local: Payment | Refund | None, *, gateway: str) -> list[Finding]:
    """What one bill line says against our row with the same reference (any status, any day)."""
    subject = line.kind
    base = {
        "subject": subject,
        "reference": line.reference,
        "their_amount_fen": line.amount_fen,
        "their_status": line.status,
    }
    if local is None:
        return [Finding(kind=Kind.MISSING_LOCAL, our_amount_fen=None, our_status="", **base)]
    ours = {"our_amount_fen": local.amount_fen, "our_status": local.status}
    local_gateway = local.gateway if isinstance(local, Payment) else local.payment.gateway
    if local_gateway != gateway or (isinstance(local, Payment) and local.status in Payment.OPEN):
        return [Finding(kind=Kind.MISSING_LOCAL, **ours, **base)]  # we do not know it as settled here
    if _foreign(line, local, gateway=gateway):
        return [Finding(kind=Kind.FOREIGN, **ours, **base)]  # our reference in someone else's account
    findings = []
    if local.status != line.status:
        findings.append(Finding(kind=Kind.STATUS_MISMATCH, **ours, **base))
    if local.amount_fen != line.amount_fen:
        findings.append(Finding(kind=Kind.AMOUNT_MISMATCH, **ours, **base))
    return findings


@dataclass(frozen=True)
class _BillWord:
    """A bill line as a gateway word for the trust checks: who it names (the identity columns)."""

    gateway: str
    payment_no: str
    refund_no: str | None = None
    app_id: str | None = None
    merchant_id: str | None = None
    seller_id: str | None = None
    sub_app_id: str | None = None
    source: str = "bill"


def _foreign(line: BillLine | BillEntry, local: Payment | Refund, *, gateway: str) -> bool:
    """Whether the line names an app or merchant that is not ours (the gateway's ``CHECKS`` for bills: the
    same table as every other message; amounts and states are compared by ``classify_line``)."""
    adapter = get_gateway(gateway)
    refund_no = line.reference if line.kind == "refund" else None
    word = _BillWord(gateway=gateway, payment_no=line.out_trade_no, refund_no=refund_no, **line.identity)
    payment = local if isinstance(local, Payment) else local.payment
    try:
        if isinstance(local, Payment):
            expected = trade_expectations(
                payment_no=payment.payment_no,
                payment_gateway=gateway,
                amount_fen=payment.amount_fen,
                identity=adapter.identity(),
            )
            check_trade(adapter.checks, word, expected)
        else:
            expected = refund_expectations(
                refund_no=local.refund_no,
                payment_gateway=gateway,
                payment_no=payment.payment_no,
                payment_amount_fen=payment.amount_fen,
                refund_fen=local.amount_fen,
                refunded_totals=frozenset(),
                identity=adapter.identity(),
            )
            check_refund(adapter.checks, word, expected)
    except FieldMismatch as exc:
        logger.warning("bill %s line %s: %s", gateway, line.reference, exc.reason)
        return True
    return False


def _ours_pass(run: BillRun, subject: str, *, now: datetime, report) -> Counter[str]:
    start, end = day_bounds(run.bill_date)
    if subject == "payment":
        model, key, at = Payment, "payment_no", "paid_at"
        qs = Payment.objects.filter(
            status=Payment.Status.SUCCEEDED, channel__in=_channels(run.gateway), paid_at__gte=start, paid_at__lt=end
        )
    else:
        model, key, at = Refund, "refund_no", "succeeded_at"
        qs = Refund.objects.filter(
            status=Refund.Status.SUCCEEDED,
            payment__channel__in=_channels(run.gateway),
            succeeded_at__gte=start,
            succeeded_at__lt=end,
        )
    total = qs.count()
    hold = hold_days()
    hold_over = BillRun.objects.filter(
        gateway=run.gateway, bill_date=run.bill_date + timedelta(days=hold), status=RStatus.DONE
    ).exists()
    counts: Counter[str] = Counter()
    done = last_id = 0
    while True:
        with transaction.atomic():
            _heartbeat(run)
            rows = list(
                qs.filter(id__gt=last_id).order_by("id").values("id", key, "amount_fen", "status", at)[: batch_size()]
            )
            if not rows:
                break
            last_id = rows[-1]["id"]
            billed = _billed_nearby(run, subject, [r[key] for r in rows], hold)
            findings = []
            for row in rows:
                if row[key] in billed:
                    continue  # in this bill (checked above) or a neighbouring day's
                held = not hold_over and _near_midnight(row[at], start, end)
                findings.append(
                    Finding(
                        kind=Kind.MISSING_REMOTE,
                        subject=subject,
                        reference=row[key],
                        our_amount_fen=row["amount_fen"],
                        their_amount_fen=None,
                        our_status=row["status"],
                        their_status="",
                        status=DStatus.HELD if held else DStatus.OPEN,
                        held_until=run.bill_date + timedelta(days=hold) if held else None,
                    )
                )
            _record(run, findings, now=now)
            counts.update(f"{f.kind}_held" if f.status == DStatus.HELD else str(f.kind) for f in findings)
        done += len(rows)
        report("ours", done, total)
    counts[f"our_{model._meta.model_name}s"] = total
    return counts


def _billed_nearby(run: BillRun, subject: str, refs: list[str], hold: int) -> set[str]:
    window = (run.bill_date - timedelta(days=hold), run.bill_date + timedelta(days=hold))
    return set(
        BillLine.objects.filter(
            gateway=run.gateway, kind=subject, reference__in=refs, bill_date__range=window
        ).values_list("reference", flat=True)
    )


# --------------------------------------------------------------------------- settlement totals


def _settlement_check(run: BillRun, entries: list[BillEntry]) -> tuple[dict, list[Finding]]:
    """The bill's own totals against ours on its basis (see the module docstring); one query per
    figure family. Returns what is kept on the run and a ``total_mismatch`` per differing figure.
    A bill that states no totals is compared with nothing; a day without a bill states zeros."""
    stated = bill_totals(entries)
    if stated is None and not entries:
        stated = BillTotals(gross_fen=0, refunds_fen=0, fees_fen=0)
    lines = BillLine.objects.filter(gateway=run.gateway, bill_date=run.bill_date)
    line_sums = {
        "gross": lines.filter(kind="payment").aggregate(s=Sum("amount_fen"))["s"] or 0,
        "refunds": lines.filter(kind="refund").aggregate(s=Sum("amount_fen"))["s"] or 0,
        "fees": lines.aggregate(s=Sum("fee_fen"))["s"] or 0,
    }
    channels = _channels(run.gateway)
    billed_payments = Payment.objects.filter(
        payment_no__in=lines.filter(kind="payment").values("reference"),
        status=Payment.Status.SUCCEEDED,
        channel__in=channels,
    )
    billed_refunds = Refund.objects.filter(
        refund_no__in=lines.filter(kind="refund").values("reference"),
        status=Refund.Status.SUCCEEDED,
        payment__channel__in=channels,
    )
    unbilled = BillDiscrepancy.objects.filter(
        gateway=run.gateway, kind=Kind.MISSING_REMOTE, bill_date=run.bill_date, seen_token=run.token
    ).exclude(status=DStatus.HELD)
    ours = {
        "gross": (billed_payments.aggregate(s=Sum("amount_fen"))["s"] or 0)
        + (unbilled.filter(subject="payment").aggregate(s=Sum("our_amount_fen"))["s"] or 0),
        "refunds": (billed_refunds.aggregate(s=Sum("amount_fen"))["s"] or 0)
        + (unbilled.filter(subject="refund").aggregate(s=Sum("our_amount_fen"))["s"] or 0),
        "fees": line_sums["fees"],  # fees are known only from the bill's rows
    }
    ours["net"] = ours["gross"] - ours["refunds"] - ours["fees"]
    line_sums["net"] = line_sums["gross"] - line_sums["refunds"] - line_sums["fees"]
    theirs: dict[str, int | None] = {figure: None for figure in FIGURES}
    if stated is not None:
        theirs = {
            "gross": stated.gross_fen,
            "refunds": stated.refunds_fen,
            "fees": stated.fees_fen,
            "net": stated.settled_fen,
        }
    findings = [
        Finding(
            kind=Kind.TOTAL_MISMATCH,
            subject="total",
            reference=f"{run.bill_date.isoformat()}:{figure}",
            our_amount_fen=ours[figure],
            their_amount_fen=theirs[figure],
            our_status="",
            their_status="",
        )
        for figure in FIGURES
        if theirs[figure] is not None and theirs[figure] != ours[figure]
    ]
    kept = {
        "bill": theirs,
        "ours": ours,
        "lines": line_sums,
        "stated": stated is not None,
        "mismatches": [figure for figure in FIGURES if theirs[figure] is not None and theirs[figure] != ours[figure]],
    }
    return kept, findings


def _near_midnight(moment: datetime, start: datetime, end: datetime) -> bool:
    window = timedelta(seconds=cross_midnight_seconds())
    return moment - start < window or end - moment <= window


def _finish(run: BillRun, *, now: datetime) -> Counter[str]:
    counts: Counter[str] = Counter()
    counts["auto_resolved"] = _transition(
        BillDiscrepancy.objects.filter(gateway=run.gateway, bill_date=run.bill_date)
        .exclude(status=DStatus.RESOLVED)
        .exclude(seen_token=run.token),
        to=DStatus.RESOLVED,
        note=f"no longer found when the {run.gateway} bill of {run.bill_date} was reconciled again",
        now=now,
    )
    counts["hold_expired"] = _transition(
        BillDiscrepancy.objects.filter(
            gateway=run.gateway, kind=Kind.MISSING_REMOTE, status=DStatus.HELD, held_until__lte=run.bill_date
        ),
        to=DStatus.OPEN,
        note=f"in no {run.gateway} bill up to {run.bill_date}: missing at the gateway",
        now=now,
    )
    return +counts


# --------------------------------------------------------------------------- recording


_UPDATED_FIELDS = (
    "bill_date",
    "subject",
    "our_amount_fen",
    "their_amount_fen",
    "our_status",
    "their_status",
    "last_seen",
    "seen_token",
    "status",
    "resolved_at",
    "resolution_note",
    "held_until",
)


def _record(run: BillRun, findings: list[Finding], *, now: datetime) -> None:
    """Upsert findings (one select, one insert, one update). A human's resolution is kept; one the
    job made itself is reopened when the discrepancy shows up again."""
    if not findings:
        return
    existing = {
        (d.kind, d.reference): d
        for d in BillDiscrepancy.objects.select_for_update().filter(
            gateway=run.gateway, reference__in={f.reference for f in findings}
        )
    }
    new: list[BillDiscrepancy] = []
    changed: list[BillDiscrepancy] = []
    moved: list[tuple[int, str, str]] = []  # (id, from, to): audited with the bulk update
    for f in findings:
        values = {
            "bill_date": run.bill_date,
            "subject": f.subject,
            "our_amount_fen": f.our_amount_fen,
            "their_amount_fen": f.their_amount_fen,
            "our_status": f.our_status,
            "their_status": f.their_status,
            "last_seen": now,
            "seen_token": run.token,
        }
        d = existing.get((f.kind, f.reference))
        if d is None:
            new.append(
                BillDiscrepancy(
                    gateway=run.gateway,
                    kind=f.kind,
                    reference=f.reference,
                    status=f.status,
                    held_until=f.held_until,
                    first_seen=now,
                    **values,
                )
            )
            continue
        for name, value in values.items():
            setattr(d, name, value)
        before = d.status
        if d.status == DStatus.RESOLVED and d.resolved_by_id is None and not d.auto_repaired:
            d.status, d.resolved_at = f.status, None
            d.resolution_note = f"{d.resolution_note}\nreopened by the bill of {run.bill_date}".strip()
        elif d.status == DStatus.HELD and f.status == DStatus.OPEN:
            d.status = DStatus.OPEN
        d.held_until = f.held_until if d.status == DStatus.HELD else d.held_until
        changed.append(d)
        if d.status != before:
            moved.append((d.pk, before, d.status))
    transitions_audit(  # checked before anything is written
        BillDiscrepancy, moved, actor=JOB, action="reconcile", reason=f"found again in the bill of {run.bill_date}"
    )
    BillDiscrepancy.objects.bulk_create(new, ignore_conflicts=True)  # a racing run inserted it: seen next time
    BillDiscrepancy.objects.bulk_update(changed, _UPDATED_FIELDS, batch_size=500)


def _transition(qs, *, to: str, note: str, now: datetime) -> int:
    """Move the discrepancies of ``qs`` (by the job, not a person) and log one event each (3 queries)."""
    rows = list(qs.select_for_update().values_list("id", "status")[:10_000])
    values = {"resolved_at": now if to == DStatus.RESOLVED else None}
    if to == DStatus.RESOLVED:
        values["resolution_note"] = note
    return transition_many(BillDiscrepancy, rows, to=to, actor=JOB, action="reconcile", reason=note, values=values)
