"""One error hierarchy for the whole project.

Every domain error carries a stable machine-readable ``code``, a human message, optional
``details`` and the HTTP status the API answers with. The DRF exception handler in
``core/api.py`` turns them into the one error shape
``{"error": {"code": ..., "message": ..., "details": {...}}}``.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "error"
    http_status = 400
    default_message = "The request could not be processed."

    def __init__(self, message: str | None = None, *, code: str | None = None, details: dict[str, Any] | None = None):
        self.message = message or self.default_message
        if code:
            self.code = code
        self.details = details or {}
        super().__init__(self.message)


class NotFound(DomainError):
    code = "not_found"
    http_status = 404
    default_message = "Not found."


class AuthenticationError(DomainError):
    code = "authentication_failed"
    http_status = 401
    default_message = "Authentication failed."


class Conflict(DomainError):
    code = "conflict"
    http_status = 409
    default_message = "The request conflicts with the current state."


class InvalidTransition(Conflict):
    code = "invalid_transition"

    def __init__(self, entity: str, current: str, target: str, *, message: str | None = None):
        super().__init__(
            message or f"{entity} cannot go from '{current}' to '{target}'.",
            details={"entity": entity, "current": current, "target": target},
        )


class ValidationFailed(DomainError):
    code = "invalid_input"
    http_status = 400
    default_message = "The input is not valid."


class PaymentError(DomainError):
    code = "payment_error"


class InsufficientBalance(PaymentError):
    code = "insufficient_balance"
    http_status = 402
    default_message = "The wallet balance is not enough."


class ChannelNotConfigured(PaymentError):
    code = "channel_not_configured"
    http_status = 503
    default_message = "This payment channel is not configured."


class GatewayUnavailable(PaymentError):
    """Retryable: timeout, connection error, 5xx, an answer we could not verify."""

    code = "gateway_unavailable"
    http_status = 502
    default_message = "The payment gateway is unavailable; try again."


class GatewayRejected(PaymentError):
    """The gateway answered and said no (business error). Not retryable as is."""

    code = "gateway_rejected"
    http_status = 409
    default_message = "The payment gateway rejected the request."

    def __init__(self, message: str | None = None, *, gateway_code: str = "", details: dict[str, Any] | None = None):
        self.gateway_code = gateway_code
        super().__init__(message, details={"gateway_code": gateway_code, **(details or {})})


class TradeAlreadyPaid(GatewayRejected):
    """A close was refused because the trade was paid (WeChat ORDERPAID, Alipay TRADE_SUCCESS...)."""

    code = "trade_already_paid"


class TradeNotFound(GatewayRejected):
    """The gateway does not know the trade (WeChat ORDER_NOT_EXIST, Alipay ACQ.TRADE_NOT_EXIST)."""

    code = "trade_not_found"


class RefundNotFound(GatewayRejected):
    """The gateway does not know the refund: it never reached it (WeChat 404 RESOURCE_NOT_EXISTS, an Alipay
    refund query answered without ``refund_status``, Wallyt REFUNDNOTEXIST). Re-sending it with the same
    refund number is idempotent at every gateway, and is how it heals."""

    code = "refund_not_found"


class SignatureInvalid(PaymentError):
    code = "signature_invalid"
    http_status = 401
    default_message = "The signature does not verify."


class NotificationInvalid(PaymentError):
    """A notification that verified but cannot be accepted (stale, wrong app id, malformed...)."""

    code = "notification_invalid"
    http_status = 400
