"""``manage.py reconcile_bill [--date YYYY-MM-DD] [--gateway wechat] [--no-force]``.

Reconciles one day's WeChat, Alipay and Wallyt bills now, their rows and their settlement totals
(the same job the Celery task runs). On a terminal it draws a progress bar per gateway; otherwise
(cron, CI, a pipe) it prints plain lines.
Exits non-zero when a gateway's run failed, or (before any gateway call) when ``--date`` is not
before today in Asia/Shanghai: a day's bill is published the next morning.
"""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from core.errors import ValidationFailed
from core.progress import Bars, terminal
from finance.bills import BILL_GATEWAYS, Progress, bill_date_check, bill_reconcile, yesterday


class _Progress:
    """A tqdm bar per gateway and phase on a terminal (``core.progress``); plain lines otherwise."""

    def __init__(self, out, *, tty: bool) -> None:
        self.out = out
        self.tty = tty
        self.bars = Bars(out)

    def __call__(self, p: Progress) -> None:
        if self.tty:
            self.bars.show(f"{p.gateway} {p.phase}", min(p.done, p.total), p.total)
            return
        if p.phase == "download" and p.done == 0:
            self.out.write(f"{p.gateway} {p.bill_date}: downloading the bill\n")
        elif p.phase in ("theirs", "ours"):
            self.out.write(f"{p.gateway} {p.bill_date}: {p.phase} {p.done}/{p.total}\n")
        self.out.flush()

    def close(self) -> None:
        self.bars.close()


class Command(BaseCommand):
    help = "Download and reconcile the gateways' trade bills of one day (default: yesterday, Asia/Shanghai)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", dest="bill_date", help="Bill day, YYYY-MM-DD (default: yesterday).")
        parser.add_argument("--gateway", action="append", choices=BILL_GATEWAYS, help="Only this gateway (repeatable).")
        parser.add_argument(
            "--no-force", action="store_true", help="Skip gateways whose run of that day is already done."
        )

    def handle(self, *args, bill_date: str | None = None, gateway=None, no_force: bool = False, **options) -> None:
        now = timezone.now()
        try:
            day = date.fromisoformat(bill_date) if bill_date else yesterday(now)
        except ValueError as exc:
            raise CommandError(f"--date must be YYYY-MM-DD: {exc}") from exc
        try:
            bill_date_check(day, now)  # today's or a future day's bill is not published yet
        except ValidationFailed as exc:
            raise CommandError(f"--date {day}: {exc.message}") from exc
        out, tty = terminal(self.stdout)
        bar = _Progress(out, tty=tty)
        try:
            runs = bill_reconcile(
                bill_date=day, now=now, gateways=gateway, force=not no_force, worker="manage.py", progress=bar
            )
        finally:
            bar.close()
        if not runs:
            self.stdout.write(f"{day}: nothing to do (already done, or another worker holds the runs)")
        failed = []
        for run in runs:
            counts = ", ".join(f"{k}={v}" for k, v in sorted(run.counts.items()))
            self.stdout.write(f"{run.gateway} {run.bill_date}: {run.status} {counts}{run.error}")
            if run.status != run.Status.DONE:
                failed.append(run.gateway)
        if failed:
            raise CommandError(f"reconciliation failed for: {', '.join(failed)}")
