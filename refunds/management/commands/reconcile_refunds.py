"""``manage.py reconcile_refunds [--now ISO] [--batch-size N]``: the beat job, by hand."""

from core.progress import ReconcileCommand
from refunds.reconciliation import reconcile_refunds, refunds_due


class Command(ReconcileCommand):
    help = "Refund late/double payments, poll processing refunds, resubmit lost ones, alert on stuck ones."
    label = "refunds"

    def due(self, now):
        return refunds_due(now)

    def job(self, *, now, size, progress):
        return reconcile_refunds(now=now, size=size, progress=progress)
