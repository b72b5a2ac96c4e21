"""``manage.py reconcile_refunds [--now ISO] [--batch-size N]``: the beat job, by hand."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from config.progress import ProgressBar
from refunds.reconciliation import reconcile_refunds, refunds_due


class Command(BaseCommand):
    help = "Refund late/double payments, poll processing refunds, resubmit lost ones, alert on stuck ones."

    def add_arguments(self, parser):
        parser.add_argument("--now", help="Reconcile as of this ISO time (default: now).")
        parser.add_argument("--batch-size", type=int, default=100)

    def handle(self, *args, now=None, batch_size=100, **options):
        moment = parse_datetime(now) if now else timezone.now()
        if moment is None:
            raise CommandError("--now must be an ISO date-time, e.g. 2026-01-01T10:00:00+08:00")
        bar = ProgressBar(self.stdout, label="refunds", total=refunds_due(moment).count(), tty=self.stdout.isatty())
        result = reconcile_refunds(now=moment, size=batch_size, progress=bar)
        bar.close()
        self.stdout.write(" ".join(f"{k}={v}" for k, v in result.items()))
