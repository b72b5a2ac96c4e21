"""``manage.py reconcile_payments [--now ISO] [--batch-size N]``: the beat job, by hand."""

from core.progress import ReconcileCommand
from payments.reconciliation import payments_due, reconcile_payments


class Command(ReconcileCommand):
    help = "Poll due gateway payments, close expired ones at the gateway first, cancel expired orders."
    label = "payments"

    def due(self, now):
        return payments_due(now)

    def job(self, *, now, size, progress):
        return reconcile_payments(now=now, size=size, progress=progress)
