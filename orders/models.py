"""Orders (rentals, top-ups, overtime) with their state machine (``Order.TRANSITIONS``), and their audit
trail (``OrderEvent``); abandoned rentals for operations."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.audit import AuditEvent


class Order(models.Model):
    class Kind(models.TextChoices):
        LOCKER_RENTAL = "locker_rental", "Locker rental"
        WALLET_TOPUP = "wallet_topup", "Wallet top-up"
        LOCKER_OVERTIME = "locker_overtime", "Locker overtime"  # past a rental's paid time: ``parent`` is the rental

    class Status(models.TextChoices):  # the label is what people read (admin, customer pages, exports)
        PENDING_PAYMENT = "pending_payment", "Awaiting payment"
        PAID = "paid", "Paid"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"
        PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
        REFUNDED = "refunded", "Refunded"
        ABANDONED = "abandoned", "Abandoned"  # a rental overdue past ABANDONED_AFTER: operations clear it

    # The order state machine (DESIGN.md). Only the transition functions in services.py use it.
    TRANSITIONS = {
        Status.PENDING_PAYMENT: {Status.PAID, Status.CANCELLED},
        Status.PAID: {Status.COMPLETED, Status.PARTIALLY_REFUNDED, Status.REFUNDED, Status.ABANDONED},
        Status.PARTIALLY_REFUNDED: {Status.PARTIALLY_REFUNDED, Status.REFUNDED, Status.COMPLETED, Status.ABANDONED},
        Status.COMPLETED: {Status.PARTIALLY_REFUNDED, Status.REFUNDED},
        Status.ABANDONED: {Status.PARTIALLY_REFUNDED, Status.REFUNDED},
        Status.CANCELLED: set(),
        Status.REFUNDED: set(),
    }
    AUDIT = ("orders.OrderEvent", "order")  # core.transitions writes one per change

    order_no = models.CharField(max_length=32)  # unique: Meta.constraints
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.PENDING_PAYMENT)  # indexed: Meta
    amount_fen = models.BigIntegerField()
    compartment = models.ForeignKey(
        "lockers.Compartment", null=True, blank=True, on_delete=models.PROTECT, related_name="orders"
    )
    hours = models.PositiveIntegerField(null=True, blank=True, help_text="Rental: hours paid. Overtime: hours billed.")
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="overtime_orders",
        help_text="Overtime: the rental it is for.",
    )
    pricing = models.JSONField(default=dict, blank=True, help_text="The server's quote this amount came from.")
    expires_at = models.DateTimeField(db_index=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    rental_ends_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True, help_text="When the customer picked up.")
    abandoned_at = models.DateTimeField(null=True, blank=True, help_text="When the rental was declared abandoned.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-id",)
        # declared here, not with unique=/db_index=: no varchar_pattern_ops twin per text column, which
        # every paid notification's UPDATE would write to (payments.models.Payment.Meta says more)
        indexes = [models.Index(fields=("status",), name="order_status")]
        constraints = [
            models.UniqueConstraint(fields=("order_no",), name="order_no_unique"),
            models.CheckConstraint(condition=Q(amount_fen__gt=0), name="order_amount_positive"),
            models.CheckConstraint(
                condition=Q(kind="locker_rental", compartment__isnull=False, hours__isnull=False, parent__isnull=True)
                | Q(kind="wallet_topup", compartment__isnull=True, parent__isnull=True)
                | Q(kind="locker_overtime", compartment__isnull=False, hours__isnull=False, parent__isnull=False),
                name="order_kind_shape",
            ),
            # one unpaid overtime order per rental: asking again returns it (orders.overtime)
            models.UniqueConstraint(
                fields=("parent",), condition=Q(status="pending_payment"), name="order_one_open_overtime_per_rental"
            ),
        ]
        permissions = [("clear_abandoned", "Can open and clear the compartment of an abandoned rental")]

    def __str__(self) -> str:
        return self.order_no


class AbandonedRental(Order):
    """Operations' task list in admin: abandoned rentals (``abandoned_at`` set)."""

    class Meta:
        proxy = True
        verbose_name = "abandoned rental"


class OrderEvent(AuditEvent):
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="events")
