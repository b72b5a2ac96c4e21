"""The one small protocol every payment gateway adapter implements.

Adapters turn our plain requests into gateway calls and gateway answers into the frozen
dataclasses below. They never touch the ORM and never import views; errors are raised from
``core.errors`` (``GatewayUnavailable`` is retryable, ``GatewayRejected`` is not,
``SignatureInvalid`` / ``NotificationInvalid`` for notifications).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from core.errors import ValidationFailed
from payments.gateways.trust import CheckTable, Identity


class TradeState(enum.StrEnum):
    PENDING = "pending"  # created, not paid yet (WeChat NOTPAY/USERPAYING, Alipay WAIT_BUYER_PAY)
    SUCCEEDED = "succeeded"  # money taken (also WeChat REFUND: it was paid, refunds happen later)
    CLOSED = "closed"  # closed/revoked/expired without money taken
    FAILED = "failed"  # payment error (WeChat PAYERROR)


class RefundState(enum.StrEnum):
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # WeChat CLOSED, Wallyt FAIL, Alipay refund refused
    ABNORMAL = "abnormal"  # WeChat ABNORMAL: the money could not reach the buyer's account


@dataclass(frozen=True)
class PrepayRequest:
    payment_no: str  # our out_trade_no
    amount_fen: int
    description: str
    product: str  # "jsapi" | "native" | "h5" (WeChat), "page" | "wap" (Alipay), "jsapi" (Wallyt)
    expires_at: datetime
    notify_url: str
    openid: str | None = None
    client_ip: str | None = None
    return_url: str | None = None

    def __post_init__(self) -> None:
        """Raises ``ValidationFailed`` (nothing is sent) unless ``amount_fen`` is a positive int."""
        if type(self.amount_fen) is not int or self.amount_fen <= 0:
            raise ValidationFailed("amount_fen must be a positive int")


@dataclass(frozen=True)
class PrepayResult:
    pay_params: dict[str, str] | None = None  # for wx.requestPayment (WeChat JSAPI, Wallyt)
    code_url: str | None = None  # WeChat Native
    h5_url: str | None = None  # WeChat H5
    pay_url: str | None = None  # Alipay page / WAP redirect
    raw: dict[str, Any] = field(default_factory=dict)  # the gateway answer, secrets removed


@dataclass(frozen=True)
class TradeStatus:
    """What a gateway says about one trade. Every identity and amount field is checked against our
    payment by ``payments.gateways.trust`` (the adapter's ``CHECKS``) before anything changes."""

    payment_no: str
    state: TradeState
    gateway: str = ""  # the adapter that read it ("wechat" | "alipay" | "wallyt")
    source: str = "query"  # the kind of message (``trust.Message``): notify, query, return, ...
    amount_fen: int | None = None
    gateway_trade_no: str | None = None
    paid_at: datetime | None = None
    app_id: str | None = None  # who the gateway says the trade belongs to
    auth_app_id: str | None = None  # Alipay: the authorising app (= app_id without a third party)
    merchant_id: str | None = None
    seller_id: str | None = None  # Alipay: the receiving merchant's PID
    sub_app_id: str | None = None  # Wallyt: the mini-program's appid
    currency: str | None = None
    gateway_state: str = ""  # the gateway's own word (SUCCESS, TRADE_CLOSED, ...)
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RefundRequest:
    refund_no: str  # our out_refund_no / out_request_no, the idempotency key at the gateway
    payment_no: str
    gateway_trade_no: str | None
    refund_fen: int
    total_fen: int
    reason: str
    notify_url: str | None = None
    # the gateway knows the trade by its own id only (a WeChat Pay Score collection: ``transaction_id``; the
    # out_trade_no is WeChat's, not our payment_no): the refund names it by ``gateway_trade_no``
    by_gateway_trade_no: bool = False

    def __post_init__(self) -> None:
        """Raises ``ValidationFailed`` (nothing is sent) unless ``refund_fen`` is a positive int and
        ``total_fen`` an int."""
        if type(self.refund_fen) is not int or self.refund_fen <= 0 or type(self.total_fen) is not int:
            raise ValidationFailed("refund_fen must be a positive int and total_fen an int")


class AbnormalRefundDestination(enum.StrEnum):
    """Where WeChat pays out a refund that came back ``ABNORMAL`` (PROTOCOLS F.2, ``type``)."""

    USER_BANK_CARD = "USER_BANK_CARD"  # the buyer's debit card: bank_type, bank_account and real_name needed
    MERCHANT_BANK_CARD = "MERCHANT_BANK_CARD"  # the merchant's bank account; the merchant pays the buyer itself


@dataclass(frozen=True)
class AbnormalRefundRequest:
    """Apply for an ``ABNORMAL`` WeChat refund to be paid to a bank card. The bank account and the real name
    are secrets (never in ``repr``, logs or audit rows): the adapter hands them to the SDK, which encrypts them."""

    refund_no: str  # our out_refund_no
    gateway_refund_id: str  # WeChat's refund_id (the path of the call)
    destination: AbnormalRefundDestination
    bank_type: str = ""  # USER_BANK_CARD: the bank's code (e.g. ICBC_DEBIT)
    bank_account: str = field(default="", repr=False)
    real_name: str = field(default="", repr=False)


@dataclass(frozen=True)
class RefundStatus:
    """What a gateway says about one refund; checked like ``TradeStatus`` (``trust.check_refund``)."""

    refund_no: str
    state: RefundState
    gateway: str = ""
    source: str = "query"
    payment_no: str | None = None
    gateway_trade_no: str | None = None  # the refunded trade's gateway id (WeChat transaction_id)
    amount_fen: int | None = None  # this refund, fen
    total_fen: int | None = None  # the trade's amount, fen (WeChat amount.total)
    refunded_total_fen: int | None = None  # the trade's cumulative refunded amount (Alipay refund_fee)
    gateway_refund_id: str | None = None
    succeeded_at: datetime | None = None
    app_id: str | None = None
    merchant_id: str | None = None
    currency: str | None = None
    gateway_state: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Notification:
    """A verified (and, for WeChat, decrypted) gateway notification."""

    event_id: str  # unique per gateway event, used for database-enforced dedupe
    event_type: str  # the gateway's own event name (TRANSACTION.SUCCESS, trade_status_sync, ...)
    trade: TradeStatus | None = None
    refund: RefundStatus | None = None
    service_order: Any = None  # WeChat Pay Score: a ``wechat_payscore.ServiceOrderStatus``


@dataclass(frozen=True)
class NotificationReply:
    status: int
    content_type: str
    body: bytes


class Gateway(Protocol):
    name: str  # "wechat" | "alipay" | "wallyt"

    checks: CheckTable  # which fields of which message are checked against what

    def identity(self) -> Identity:
        """Our configured ids that every answer and notification must carry ("" where the gateway has none)."""

    def create(self, request: PrepayRequest) -> PrepayResult: ...

    def query(self, payment_no: str) -> TradeStatus: ...

    def close(self, payment_no: str) -> None:
        """Close an unpaid trade. Raises ``TradeAlreadyPaid`` if the gateway says it was paid."""

    def refund(self, request: RefundRequest) -> RefundStatus: ...

    def query_refund(self, refund_no: str, *, payment_no: str) -> RefundStatus: ...

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        """Verify and decode. Raises ``SignatureInvalid`` or ``NotificationInvalid``; never changes state."""

    def notification_reply(self, *, ok: bool, message: str = "") -> NotificationReply: ...


class AbnormalRefunds(Protocol):
    """A gateway that can pay an ``ABNORMAL`` refund out to a bank card (WeChat Pay only)."""

    def apply_abnormal_refund(self, request: AbnormalRefundRequest) -> RefundStatus:
        """Raises ``ValidationFailed`` (bad input, nothing sent), ``GatewayRejected``, ``GatewayUnavailable``."""
