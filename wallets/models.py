"""Wallets (balance in fen) and their append-only ledger (``WalletTransaction``, before/after balances)."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from core.money import format_yuan


class Wallet(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="wallet")
    balance_fen = models.BigIntegerField(default=0)
    version = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(balance_fen__gte=0), name="wallet_balance_not_negative")]

    def __str__(self) -> str:
        return f"wallet of {self.user}"


class WalletTransaction(models.Model):
    """Append-only ledger: a database trigger refuses UPDATE and DELETE (migration 0002)."""

    class Type(models.TextChoices):  # the label is what people read (wallet page, admin, exports)
        TOPUP = "topup", "Wallet top-up"
        PAYMENT = "payment", "Payment"
        REFUND = "refund", "Refund"
        ADJUSTMENT = "adjustment", "Adjustment"
        # a top-up refunded to the payer's gateway account: the money leaves the wallet when the refund is
        # asked for, and comes back if the refund is rejected or fails
        TOPUP_REFUND = "topup_refund", "Top-up refunded"
        REFUND_UNDONE = "refund_undone", "Top-up refund undone"

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="transactions")
    type = models.CharField(max_length=16, choices=Type.choices)
    amount_fen = models.BigIntegerField(help_text="Signed: credits positive, debits negative.")
    balance_before_fen = models.BigIntegerField()
    balance_after_fen = models.BigIntegerField()
    reference = models.CharField(max_length=40, help_text="Order, payment or refund number.")
    actor = models.CharField(max_length=80)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("-id",)
        constraints = [
            models.UniqueConstraint(fields=("wallet", "type", "reference"), name="wallet_tx_once_per_reference"),
            models.CheckConstraint(condition=~Q(amount_fen=0), name="wallet_tx_amount_not_zero"),
            models.CheckConstraint(
                condition=Q(balance_after_fen=F("balance_before_fen") + F("amount_fen")), name="wallet_tx_arithmetic"
            ),
            models.CheckConstraint(condition=Q(balance_after_fen__gte=0), name="wallet_tx_never_overdrawn"),
        ]

    def __str__(self) -> str:
        """``Wallet top-up +¥100.00 (LK2026...)``: people read it (the admin's breadcrumbs and titles)."""
        return f"{self.get_type_display()} {format_yuan(self.amount_fen, signed=True)} ({self.reference})"
