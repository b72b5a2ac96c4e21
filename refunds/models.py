"""Refunds with their state machine (``Refund.TRANSITIONS``), the approval permissions, and their audit
trail (``RefundEvent``)."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.audit import AuditEvent


class Refund(models.Model):
    class Status(models.TextChoices):
        REQUESTED = "requested"
        APPROVED = "approved"
        PROCESSING = "processing"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        ABNORMAL = "abnormal"  # WeChat ABNORMAL: the money could not reach the buyer's account
        REJECTED = "rejected"

    class Source(models.TextChoices):
        USER = "user"
        STAFF = "staff"
        SYSTEM = "system"  # automatic: late or double payments

    TRANSITIONS = {
        Status.REQUESTED: {Status.APPROVED, Status.REJECTED},
        Status.APPROVED: {Status.PROCESSING},
        Status.PROCESSING: {Status.SUCCEEDED, Status.FAILED, Status.ABNORMAL},
        Status.ABNORMAL: {Status.PROCESSING, Status.SUCCEEDED},  # retried, or paid out offline
        Status.SUCCEEDED: set(),
        Status.FAILED: set(),
        Status.REJECTED: set(),
    }
    AUDIT = ("refunds.RefundEvent", "refund")  # core.transitions writes one per change
    # refunds that count against the amount paid
    COUNTING = (Status.REQUESTED, Status.APPROVED, Status.PROCESSING, Status.SUCCEEDED, Status.ABNORMAL)

    refund_no = models.CharField(max_length=32, unique=True, help_text="Our out_refund_no.")
    payment = models.ForeignKey("payments.Payment", on_delete=models.PROTECT, related_name="refunds")
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="refunds")
    amount_fen = models.BigIntegerField()
    reason = models.CharField(max_length=200)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.REQUESTED, db_index=True)
    source = models.CharField(max_length=8, choices=Source.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decision_note = models.CharField(max_length=200, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    gateway_refund_id = models.CharField(max_length=64, blank=True)
    gateway_state = models.CharField(max_length=32, blank=True)
    gateway_answers = models.JSONField(default=list, blank=True, help_text="What the gateway said, in order.")
    last_synced_at = models.DateTimeField(null=True, blank=True)
    gateway_unknown_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The gateway said it does not know this processing refund (first time); cleared by its next word.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-id",)
        verbose_name = "refund"
        verbose_name_plural = "refunds"
        permissions = [
            ("approve_refund", "Can approve or reject refunds"),
            ("resolve_abnormal_refund", "Can resolve abnormal refunds"),
            ("resend_refund", "Can send a processing refund to its gateway again"),
            ("request_refund", "Can request refunds for customers"),
            ("export_finance", "Can export finance data"),
        ]
        constraints = [models.CheckConstraint(condition=Q(amount_fen__gt=0), name="refund_amount_positive")]

    def __str__(self) -> str:
        return self.refund_no


class RefundEvent(AuditEvent):
    refund = models.ForeignKey(Refund, on_delete=models.PROTECT, related_name="events")

    class Meta(AuditEvent.Meta):
        verbose_name = "refund event"
        verbose_name_plural = "refund events"
