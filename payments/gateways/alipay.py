"""Alipay (open platform, RSA2) adapter over the real ``python-alipay-sdk`` (pinned to 3.4.0).

The SDK's base URL is ``self._gateway`` (PROTOCOLS 0/B); ``_ConfiguredAliPay`` sets it from our
config and stamps the request ``timestamp`` in China time whatever the server's TZ is.

Server APIs come back as verified dicts; a signed ``40004 Business Failed`` is *returned*, so
every answer goes through ``_checked``. ``AlipayGateway._call`` is the one place where SDK and
transport exceptions become ``config.errors``.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from alipay import AliPay
from alipay.exceptions import AliPayException, AliPayValidationError
from alipay.utils import AliPayConfig

from config.errors import (
    ChannelNotConfigured,
    DomainError,
    GatewayRejected,
    GatewayUnavailable,
    NotificationInvalid,
    SignatureInvalid,
    TradeAlreadyPaid,
    TradeNotFound,
    ValidationFailed,
)
from payments.gateways.base import (
    Notification,
    NotificationReply,
    PrepayRequest,
    PrepayResult,
    RefundRequest,
    RefundState,
    RefundStatus,
    TradeState,
    TradeStatus,
)
from payments.gateways.bills import BillEntry, parse_alipay_bill_zip
from payments.gateways.money import fen_to_yuan, yuan_to_fen

PRODUCTION_GATEWAY = "https://openapi.alipay.com/gateway.do"
SIGN_TYPE = "RSA2"
SUCCESS_CODE = "10000"
MAX_NOTIFICATION_BYTES = 64 * 1024
CST = timezone(timedelta(hours=8))
ALIPAY_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

TRADE_STATES: dict[str, TradeState] = {
    "WAIT_BUYER_PAY": TradeState.PENDING,
    "TRADE_SUCCESS": TradeState.SUCCEEDED,
    "TRADE_FINISHED": TradeState.SUCCEEDED,
    "TRADE_CLOSED": TradeState.CLOSED,
}
PRODUCTS = {"page": "alipay.trade.page.pay", "wap": "alipay.trade.wap.pay"}
RETRYABLE_CODES = frozenset({"20000"})
RETRYABLE_SUB_CODES = frozenset({"ACQ.SYSTEM_ERROR", "aop.ACQ.SYSTEM_ERROR", "ACQ.REFUND_FEE_ERROR_RETRY"})
_TRANSPORT_ERRORS = (OSError, http.client.HTTPException)  # URLError, HTTPError, timeouts, resets
_MALFORMED_ERRORS = (AliPayValidationError, ValueError, AttributeError, TypeError, KeyError)


@dataclass(frozen=True)
class AlipayConfig:
    app_id: str
    app_private_key_pem: str = field(repr=False)
    alipay_public_key_pem: str
    gateway_url: str = PRODUCTION_GATEWAY
    notify_url: str = ""
    return_url: str | None = None
    timeout: int = 15


class _ConfiguredAliPay(AliPay):
    def __init__(self, config: AlipayConfig) -> None:
        super().__init__(
            appid=config.app_id,
            app_notify_url=config.notify_url or None,
            app_private_key_string=config.app_private_key_pem,
            alipay_public_key_string=config.alipay_public_key_pem,
            sign_type=SIGN_TYPE,
            config=AliPayConfig(timeout=config.timeout),
        )
        self._gateway = config.gateway_url or PRODUCTION_GATEWAY

    def build_body(self, method: str, biz_content: Any = None, **kwargs: Any) -> dict[str, Any]:
        data = super().build_body(method, biz_content, **kwargs)
        data["timestamp"] = datetime.now(CST).strftime(ALIPAY_TIME_FORMAT)  # Alipay reads it as China time
        return data


# --------------------------------------------------------------------------- helpers


def _cst_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValidationFailed("expires_at must be timezone-aware")
    return moment.astimezone(CST).strftime(ALIPAY_TIME_FORMAT)


def _parse_cst(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:  # gmt_refund carries milliseconds ("2015-04-28 15:45:57.320"): drop them
        return datetime.strptime(value.split(".", 1)[0], ALIPAY_TIME_FORMAT).replace(tzinfo=CST)
    except ValueError:
        return None


def _optional_fen(value: Any) -> int | None:
    return yuan_to_fen(value) if isinstance(value, str) and value else None


def _rejection(answer: Mapping[str, Any]) -> DomainError:
    code = str(answer.get("code", ""))
    sub_code = str(answer.get("sub_code", ""))
    message = str(answer.get("sub_msg") or answer.get("msg") or code)
    details = {"code": code, "sub_code": sub_code}
    if code in RETRYABLE_CODES or sub_code in RETRYABLE_SUB_CODES or sub_code.startswith("isp."):
        return GatewayUnavailable(f"Alipay: {message}", details=details)
    if sub_code == "ACQ.TRADE_NOT_EXIST":
        return TradeNotFound(message, gateway_code=sub_code, details=details)
    if sub_code == "ACQ.TRADE_HAS_SUCCESS":
        return TradeAlreadyPaid(message, gateway_code=sub_code, details=details)
    return GatewayRejected(message, gateway_code=sub_code or code, details=details)


def _checked(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise GatewayUnavailable("Alipay answer is not a JSON object.")
    if answer.get("code") != SUCCESS_CODE:
        raise _rejection(answer)
    return answer


def trade_status_from(data: Mapping[str, Any], *, payment_no: str | None = None) -> TradeStatus:
    """Query answer or notification -> ``TradeStatus`` (raises ``ValueError`` when malformed)."""
    gateway_state = str(data.get("trade_status", ""))
    state = TRADE_STATES.get(gateway_state)
    out_trade_no = data.get("out_trade_no") or payment_no
    if state is None or not isinstance(out_trade_no, str):
        raise ValueError(f"unexpected trade_status {gateway_state!r}")
    return TradeStatus(
        payment_no=out_trade_no,
        state=state,
        amount_fen=_optional_fen(data.get("total_amount")),
        gateway_trade_no=data.get("trade_no") or None,
        paid_at=_parse_cst(data.get("gmt_payment") or data.get("send_pay_date")),
        app_id=data.get("app_id"),
        merchant_id=data.get("seller_id"),
        gateway_state=gateway_state,
        raw=dict(data),
    )


# --------------------------------------------------------------------------- the gateway


class AlipayGateway:
    name = "alipay"

    def __init__(self, config: AlipayConfig) -> None:
        self.config = config
        try:
            self.client = _ConfiguredAliPay(config)
        except (ValueError, IndexError, TypeError, AliPayException) as exc:
            raise ChannelNotConfigured("The Alipay keys cannot be loaded.") from exc

    def identity(self) -> tuple[str, str]:
        """(app id, merchant id) every answer and notification must carry."""
        return self.config.app_id, ""

    @staticmethod
    def _call(operation: Callable[[], Any]) -> dict[str, Any]:
        """Run one SDK server call; translate its exceptions; insist on code 10000."""
        try:
            answer = operation()
        except AliPayException as exc:  # unsigned answer or error_response: we cannot trust it
            raise GatewayUnavailable(f"Alipay answer is unsigned or an error_response: {exc}") from exc
        except TimeoutError as exc:
            raise GatewayUnavailable("Alipay timed out.") from exc
        except _TRANSPORT_ERRORS as exc:
            raise GatewayUnavailable("Alipay could not be reached.") from exc
        except _MALFORMED_ERRORS as exc:
            raise GatewayUnavailable("Alipay answer could not be verified.") from exc
        return _checked(answer)

    # -- protocol

    def create(self, request: PrepayRequest) -> PrepayResult:
        method = PRODUCTS.get(request.product)
        if method is None:
            raise ValidationFailed(f"Alipay does not support product {request.product!r}")
        if type(request.amount_fen) is not int or request.amount_fen <= 0:
            raise ValidationFailed("amount_fen must be a positive int")
        build = (
            self.client.api_alipay_trade_page_pay if request.product == "page" else self.client.api_alipay_trade_wap_pay
        )
        order_string = build(
            subject=request.description,
            out_trade_no=request.payment_no,
            total_amount=fen_to_yuan(request.amount_fen),
            return_url=request.return_url or self.config.return_url or None,
            notify_url=request.notify_url or self.config.notify_url or None,
            time_expire=_cst_text(request.expires_at),
        )
        pay_url = f"{self.client._gateway}?{order_string}"
        return PrepayResult(pay_url=pay_url, raw={"method": method, "out_trade_no": request.payment_no})

    def query(self, payment_no: str) -> TradeStatus:
        answer = self._call(lambda: self.client.api_alipay_trade_query(out_trade_no=payment_no))
        try:
            return trade_status_from(answer, payment_no=payment_no)
        except ValueError as exc:
            raise GatewayUnavailable(f"Alipay query answer is malformed: {exc}") from exc

    def close(self, payment_no: str) -> None:
        """Raises ``TradeNotFound`` when Alipay never saw the trade (the buyer never opened the cashier)."""
        try:
            self._call(lambda: self.client.api_alipay_trade_close(out_trade_no=payment_no))
        except GatewayRejected as exc:
            if exc.gateway_code != "ACQ.TRADE_STATUS_ERROR":
                raise
            status = self.query(payment_no)  # the status error does not say *which* status: ask
            if status.state is TradeState.SUCCEEDED:
                raise TradeAlreadyPaid("Alipay trade is paid.", gateway_code=status.gateway_state) from exc
            if status.state is not TradeState.CLOSED:
                raise

    def refund(self, request: RefundRequest) -> RefundStatus:
        if type(request.refund_fen) is not int or request.refund_fen <= 0:
            raise ValidationFailed("refund_fen must be a positive int")
        kwargs: dict[str, Any] = {"out_request_no": request.refund_no}
        if request.reason:
            kwargs["refund_reason"] = request.reason
        answer = self._call(
            lambda: self.client.api_alipay_trade_refund(
                refund_amount=fen_to_yuan(request.refund_fen), out_trade_no=request.payment_no, **kwargs
            )
        )
        fund_change = str(answer.get("fund_change", ""))
        return RefundStatus(
            refund_no=request.refund_no,
            state=RefundState.SUCCEEDED if fund_change == "Y" else RefundState.PROCESSING,
            payment_no=answer.get("out_trade_no") or request.payment_no,
            amount_fen=request.refund_fen,
            gateway_refund_id=None,
            succeeded_at=_parse_cst(answer.get("gmt_refund_pay")) if fund_change == "Y" else None,
            gateway_state=f"fund_change={fund_change}",
            raw=answer,
        )

    def query_refund(self, refund_no: str, *, payment_no: str) -> RefundStatus:
        """``REFUND_SUCCESS`` -> SUCCEEDED; anything else (field absent) -> PROCESSING.

        Alipay documents an absent ``refund_status`` as "not received or failed": re-sending the
        refund with the same ``refund_no`` is idempotent and is the way to settle it.
        """
        answer = self._call(
            lambda: self.client.api_alipay_trade_fastpay_refund_query(out_request_no=refund_no, out_trade_no=payment_no)
        )
        gateway_state = str(answer.get("refund_status", ""))
        try:
            amount_fen = _optional_fen(answer.get("refund_amount"))
        except ValueError as exc:
            raise GatewayUnavailable("Alipay refund amount is malformed.") from exc
        succeeded = gateway_state == "REFUND_SUCCESS"
        return RefundStatus(
            refund_no=refund_no,
            state=RefundState.SUCCEEDED if succeeded else RefundState.PROCESSING,
            payment_no=answer.get("out_trade_no") or payment_no,
            amount_fen=amount_fen,
            succeeded_at=_parse_cst(answer.get("gmt_refund_pay")) if succeeded else None,
            gateway_state=gateway_state,
            raw=answer,
        )

    def bill(self, bill_date: date) -> list[BillEntry]:
        """The day's ``trade`` bill: ask for its download URL, fetch the ZIP, parse the GBK detail CSV.

        ``isp.bill_not_exist`` (a day without trades) is an empty bill; transport errors and
        unreadable files raise ``GatewayUnavailable``.
        """
        biz = {"bill_type": "trade", "bill_date": bill_date.isoformat()}
        try:
            answer = self._call(lambda: self.client.server_api("alipay.data.dataservice.bill.downloadurl.query", biz))
        except GatewayUnavailable as exc:
            if exc.details.get("sub_code") == "isp.bill_not_exist":
                return []
            raise
        url = answer.get("bill_download_url")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise GatewayUnavailable("Alipay bill answer lacks an http(s) bill_download_url.")
        try:
            response = requests.get(url, timeout=(5, self.config.timeout * 4))
        except requests.RequestException as exc:
            raise GatewayUnavailable("Alipay bill could not be downloaded.") from exc
        if response.status_code != 200:
            raise GatewayUnavailable(f"Alipay bill download answered HTTP {response.status_code}.")
        try:
            return parse_alipay_bill_zip(response.content)
        except (UnicodeDecodeError, ValueError) as exc:
            raise GatewayUnavailable(f"Alipay bill cannot be parsed: {exc}") from exc

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        if len(body) > MAX_NOTIFICATION_BYTES:
            raise NotificationInvalid("notification body too large")
        params = _form_params(body)
        verified = self._verified(params)
        event_id, event_type = verified.get("notify_id"), verified.get("notify_type", "")
        if not event_id:
            raise NotificationInvalid("notification lacks notify_id")
        try:
            trade = trade_status_from(verified)
            refund = _refund_from_notification(verified)
        except ValueError as exc:
            raise NotificationInvalid(f"notification is malformed: {exc}") from exc
        return Notification(event_id=event_id, event_type=event_type, trade=trade, refund=refund)

    def verify_return(self, params: Mapping[str, str]) -> str:
        """Verify the ``return_url`` GET parameters; return ``out_trade_no`` (a hint only: query to be sure)."""
        verified = self._verified(dict(params))
        out_trade_no = verified.get("out_trade_no")
        if not out_trade_no:
            raise NotificationInvalid("return parameters lack out_trade_no")
        return out_trade_no

    def notification_reply(self, *, ok: bool, message: str = "") -> NotificationReply:
        return NotificationReply(status=200, content_type="text/plain", body=b"success" if ok else b"fail")

    # -- helpers

    def _verified(self, params: dict[str, str]) -> dict[str, str]:
        """Pop ``sign``; insist on RSA2; verify over the sorted rest (empty values kept); check app_id."""
        unsigned = dict(params)
        signature = unsigned.pop("sign", "")
        sign_type = unsigned.pop("sign_type", "")
        if not signature:
            raise SignatureInvalid("missing sign")
        if sign_type != SIGN_TYPE:
            raise SignatureInvalid(f"sign_type must be {SIGN_TYPE}")
        try:
            ok = self.client.verify(dict(unsigned), signature)
        except (ValueError, TypeError, AliPayException) as exc:  # bad base64 and friends
            raise SignatureInvalid("sign is not a valid signature") from exc
        if not ok:
            raise SignatureInvalid("Alipay signature does not verify")
        if unsigned.get("app_id") != self.config.app_id:
            raise NotificationInvalid("notification is for another app_id")
        return {**unsigned, "sign_type": sign_type}


def _form_params(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotificationInvalid("notification body is not a UTF-8 form") from exc
    params = dict(pairs)
    if len(params) != len(pairs):
        raise NotificationInvalid("notification repeats a field")
    return params


def _refund_from_notification(data: Mapping[str, str]) -> RefundStatus | None:
    """A trade_status_sync carrying ``out_biz_no`` + ``refund_fee`` also reports a refund that went through.

    ``refund_fee`` is the trade's cumulative refunded amount, so it is not put in ``amount_fen``.
    """
    refund_no = data.get("out_biz_no")
    if not refund_no or not data.get("refund_fee"):
        return None
    return RefundStatus(
        refund_no=refund_no,
        state=RefundState.SUCCEEDED,
        payment_no=data.get("out_trade_no"),
        succeeded_at=_parse_cst(data.get("gmt_refund")),
        merchant_id=data.get("seller_id"),
        gateway_state="refund_fee",
        raw=dict(data),
    )
