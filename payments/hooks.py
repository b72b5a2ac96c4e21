"""What payments asks of the apps above it, registered explicitly instead of named in strings.

``refunds`` imports ``payments`` (never the other way), yet two things payments meets belong to refunds:
a gateway's word about a refund (a notification carries it) and the money of a late or double payment,
which goes back at once. ``refunds`` registers both in its ``AppConfig.ready()``::

    hooks.register_refund_status_handler(refund_apply_gateway_status)
    hooks.register_flagged_payment_refund(lambda payment_id: refund_flagged_payment_task.delay(payment_id))

An editor follows the call from here to the registration. Nothing registered (refunds not installed)
raises ``DomainError`` (``refund_unhandled``) where the hook is needed, never a silent skip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from core.errors import DomainError

if TYPE_CHECKING:
    from core.audit import Actor
    from payments.gateways.base import RefundStatus
    from payments.models import Payment


class RefundStatusHandler(Protocol):
    """Apply a gateway's word about one of our refunds, in the caller's transaction (a failure rolls it back).
    Returns the refund's payment, or None when the word changed nothing."""

    def __call__(self, *, status: RefundStatus, actor: Actor) -> Payment | None: ...


class FlaggedPaymentRefund(Protocol):
    """Start refunding one late or double payment (``payment_id``: ``Payment.pk``). Called after the commit
    that flagged it; it must not raise for a lost send (reconciliation refunds what it missed)."""

    def __call__(self, payment_id: int) -> None: ...


_refund_status_handler: RefundStatusHandler | None = None
_flagged_payment_refund: FlaggedPaymentRefund | None = None


def register_refund_status_handler(handler: RefundStatusHandler) -> None:
    global _refund_status_handler
    _refund_status_handler = handler


def register_flagged_payment_refund(refund: FlaggedPaymentRefund) -> None:
    global _flagged_payment_refund
    _flagged_payment_refund = refund


def refund_status_handler() -> RefundStatusHandler:
    """The registered handler; ``DomainError`` (``refund_unhandled``) when none is."""
    if _refund_status_handler is None:
        raise DomainError("No refund handler is registered.", code="refund_unhandled")
    return _refund_status_handler


def flagged_payment_refund() -> FlaggedPaymentRefund:
    """The registered refund of flagged payments; ``DomainError`` (``refund_unhandled``) when none is."""
    if _flagged_payment_refund is None:
        raise DomainError("No refund of flagged payments is registered.", code="refund_unhandled")
    return _flagged_payment_refund
