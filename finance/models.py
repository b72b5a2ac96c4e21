"""Bills and their reconciliation: one run per gateway and day, the bill's lines, the discrepancies found
and their audit trail. The tables were created by ``refunds`` (migrations 0003-0005) and moved here
(finance 0001/0002: state moved with ``SeparateDatabaseAndState``, tables renamed to ``finance_*``)."""

from django.conf import settings
from django.db import models

from core.audit import AuditEvent
from payments.models import GATEWAY_LABELS


class BillRun(models.Model):
    """One reconciliation of one gateway's bill for one day. Claimed by one worker at a time
    (``select_for_update(skip_locked=True)`` plus a lease, so a crashed worker's run is taken over)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"  # retried by the next job (the error is kept)

    gateway = models.CharField(max_length=16)
    bill_date = models.DateField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING, db_index=True)
    counts = models.JSONField(default=dict, blank=True, help_text="Bill lines, local rows, discrepancies by kind.")
    attempts = models.PositiveIntegerField(default=0)
    token = models.CharField(max_length=32, blank=True, help_text="The current attempt; marks what it has seen.")
    worker = models.CharField(max_length=80, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    totals = models.JSONField(
        default=dict,
        blank=True,
        help_text="Settlement check, fen: the bill's own totals, ours on the same basis, the sums of its lines.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-bill_date", "gateway")
        verbose_name = "bill reconciliation run"
        verbose_name_plural = "bill reconciliation runs"
        constraints = [models.UniqueConstraint(fields=("gateway", "bill_date"), name="bill_run_once_per_day")]

    def __str__(self) -> str:
        """``WeChat Pay bill of 2026-11-30 (Done)``: people read it (titles, breadcrumbs, messages)."""
        return f"{self.gateway_label} bill of {self.bill_date:%Y-%m-%d} ({self.get_status_display()})"

    @property
    def gateway_label(self) -> str:
        return GATEWAY_LABELS.get(self.gateway, self.gateway)


class BillLine(models.Model):
    """What a gateway's bill said about one payment or refund (kept to match cross-midnight items
    against neighbouring days and to re-check a discrepancy without downloading again)."""

    gateway = models.CharField(max_length=16)
    bill_date = models.DateField()
    kind = models.CharField(max_length=8)  # payment | refund
    reference = models.CharField(max_length=64, help_text="out_trade_no (payments) or out_refund_no (refunds).")
    out_trade_no = models.CharField(max_length=64)
    amount_fen = models.BigIntegerField()
    status = models.CharField(max_length=16)
    occurred_at = models.DateTimeField()
    gateway_trade_no = models.CharField(max_length=64, blank=True)
    fee_fen = models.BigIntegerField(
        default=0, help_text="The gateway's fee: > 0 kept on a payment, < 0 given back with a refund."
    )
    identity = models.JSONField(
        default=dict, blank=True, help_text="Whose line it says it is: app_id, merchant_id, seller_id, sub_app_id."
    )

    class Meta:
        ordering = ("bill_date", "id")
        verbose_name = "bill line"
        verbose_name_plural = "bill lines"
        constraints = [
            models.UniqueConstraint(fields=("gateway", "bill_date", "kind", "reference"), name="bill_line_once"),
        ]
        indexes = [
            models.Index(fields=("gateway", "kind", "reference"), name="bill_line_reference"),
            models.Index(fields=("kind", "reference"), name="bill_line_kind_reference"),  # fees by payment/refund
        ]

    def __str__(self) -> str:
        return f"{self.gateway} {self.bill_date} {self.kind} {self.reference}"


class BillDiscrepancy(models.Model):
    class Kind(models.TextChoices):
        MISSING_LOCAL = "missing_local", "In the bill, not settled here"
        MISSING_REMOTE = "missing_remote", "Settled here, in no bill"
        AMOUNT_MISMATCH = "amount_mismatch", "Amount differs"
        STATUS_MISMATCH = "status_mismatch", "Status differs"
        TOTAL_MISMATCH = "total_mismatch", "Day total differs"  # a settlement figure vs the bill's own total
        FOREIGN = "foreign", "Names another merchant or app"  # our reference, someone else's account

    class Status(models.TextChoices):
        OPEN = "open"
        ASSIGNED = "assigned"
        RESOLVED = "resolved"
        HELD = "held"  # possibly booked by the gateway on a neighbouring day: wait for its bill

    # a person assigns and resolves; the job resolves what is gone, opens a hold that expired and reopens
    # what it resolved itself when the bill shows it again (core.transitions, finance.bills_workflow)
    TRANSITIONS = {
        Status.OPEN: {Status.ASSIGNED, Status.RESOLVED},
        Status.ASSIGNED: {Status.ASSIGNED, Status.RESOLVED},
        Status.HELD: {Status.OPEN, Status.ASSIGNED, Status.RESOLVED},
        Status.RESOLVED: {Status.OPEN, Status.HELD},
    }
    AUDIT = ("finance.BillDiscrepancyEvent", "discrepancy")

    bill_date = models.DateField(db_index=True)
    gateway = models.CharField(max_length=16)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    subject = models.CharField(max_length=8, default="payment", help_text="payment, refund or total")
    reference = models.CharField(
        max_length=64,
        help_text="out_trade_no (payment_no), out_refund_no (refund_no), or day:figure for a total (2026-05-01:fees).",
    )
    our_amount_fen = models.BigIntegerField(null=True, blank=True)
    their_amount_fen = models.BigIntegerField(null=True, blank=True)
    our_status = models.CharField(max_length=16, blank=True)
    their_status = models.CharField(max_length=16, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN, db_index=True)
    held_until = models.DateField(null=True, blank=True, help_text="Held until this day's bill is reconciled.")
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolution_note = models.TextField(blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    auto_repaired = models.BooleanField(default=False)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    seen_token = models.CharField(max_length=32, blank=True, help_text="The run attempt that last found it.")

    class Meta:
        ordering = ("-bill_date", "gateway", "kind", "reference")
        verbose_name = "bill discrepancy"
        verbose_name_plural = "bill discrepancies"
        constraints = [
            models.UniqueConstraint(fields=("gateway", "kind", "reference"), name="bill_discrepancy_once"),
        ]
        indexes = [models.Index(fields=("gateway", "bill_date", "status"), name="bill_discrepancy_day")]

    def __str__(self) -> str:
        """``Wallyt 2026-11-30: Settled here, in no bill PY2026...``: people read it (titles, messages)."""
        return f"{self.gateway_label} {self.bill_date:%Y-%m-%d}: {self.get_kind_display()} {self.reference}"

    @property
    def gateway_label(self) -> str:
        return GATEWAY_LABELS.get(self.gateway, self.gateway)


class BillDiscrepancyEvent(AuditEvent):
    discrepancy = models.ForeignKey(BillDiscrepancy, on_delete=models.PROTECT, related_name="events")

    class Meta(AuditEvent.Meta):
        verbose_name = "bill discrepancy event"
        verbose_name_plural = "bill discrepancy events"
