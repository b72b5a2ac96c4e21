"""Alipay (open platform, RSA2) adapter over the real ``python-alipay-sdk`` (pinned to 3.4.0).

The SDK's base URL is ``self._gateway`` (PROTOCOLS 0/B); ``_ConfiguredAliPay`` sets it from our
config and stamps the request ``timestamp`` in China time whatever the server's TZ is, and sends
server calls through one pooled session per process (``payments.gateways.transport``) instead of the
SDK's ``urlopen``, a new connection per call.

Server APIs come back as verified dicts; a signed ``40004 Business Failed`` is *returned*, so
every answer goes through ``_checked``. ``AlipayGateway._call`` is the one place where SDK and
transport exceptions become ``core.errors``.
"""

from __future__ import annotations

import base64
import binascii
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
from Cryptodome.Hash import SHA256
from Cryptodome.Signature import PKCS1_v1_5

from core.errors import (
    ChannelNotConfigured,
    DomainError,
    GatewayRejected,
    GatewayUnavailable,
    NotificationInvalid,
    RefundNotFound,
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
from payments.gateways.transport import ProcessSession
from payments.gateways.trust import Check, CheckTable, Identity, Message, gateway_check, subject_check

PRODUCTION_GATEWAY = "https://openapi.alipay.com/gateway.do"
SIGN_TYPE = "RSA2"
SUCCESS_CODE = "10000"
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
# Charsets Alipay declares in notifies (PROTOCOLS F.5: GBK seen even when the request said UTF-8).
NOTIFY_CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "gbk": "gbk", "gb2312": "gbk", "gb18030": "gb18030"}
SENT_WITH_TRADE = frozenset({Message.NOTIFY, Message.RETURN})
# Which field of which message is checked against what (payments.gateways.trust). Sources: the merchant
# checks of opendocs.alipay.com/open/270/105902 (PROTOCOLS F.5: out_trade_no, total_amount, seller_id,
# app_id), the notify and return fields of PROTOCOLS B.5, the refund answer / refund query fields of B.5
# ("refund_fee" is the trade's cumulative refunded amount; "refund_amount" this refund's).
CHECKS = CheckTable(
    gateway="alipay",
    trade=(
        subject_check("trade", "out_trade_no"),
        gateway_check(),
        Check("app_id", "app_id", "ALIPAY_APP_ID", SENT_WITH_TRADE),
        Check("auth_app_id", "auth_app_id", "ALIPAY_APP_ID (no third party involved)"),
        Check("seller_id", "seller_id / #账号", "ALIPAY_SELLER_ID", SENT_WITH_TRADE | {Message.BILL}),
        Check("amount_fen", "total_amount", "the payment's amount_fen", SENT_WITH_TRADE | {Message.QUERY}),
    ),
    refund=(
        subject_check("refund", "out_biz_no / out_request_no"),
        gateway_check(),
        Check(
            "payment_no",
            "out_trade_no",
            "the refund's payment_no",
            frozenset({Message.NOTIFY, Message.ANSWER, Message.QUERY}),
        ),
        Check("amount_fen", "refund_amount / send_back_fee", "the refund's amount_fen"),
        Check("total_fen", "total_amount", "the payment's amount_fen"),
        Check(
            "refunded_total_fen",
            "refund_fee",
            "this refund + the payment's settled refunds (+ any still open)",
            frozenset({Message.NOTIFY, Message.ANSWER}),
        ),
        Check("seller_id", "#账号 (bill)", "ALIPAY_SELLER_ID", frozenset({Message.BILL})),
    ),
    envelope=(Check("sign_type", "sign_type", "RSA2", frozenset({Message.NOTIFY, Message.RETURN})),),
)
_TRANSPORT_ERRORS = (OSError, http.client.HTTPException)  # requests' errors are OSErrors; resets
_MALFORMED_ERRORS = (AliPayValidationError, ValueError, AttributeError, TypeError, KeyError)


@dataclass(frozen=True)
class AlipayConfig:
    app_id: str
    app_private_key_pem: str = field(repr=False)
    alipay_public_key_pem: str
    seller_id: str = ""  # our PID (2088...), the receiving merchant every notify and return names
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
        self.http = ProcessSession(self._gateway)

    def verified_sync_response(self, data: dict[str, Any], response_type: str) -> dict[str, Any]:
        """The SDK's server call (GET ``gateway?<signed query>``, same timeout, same answer check) through the
        pooled session. A non-2xx answer raises ``requests.HTTPError`` (an ``OSError``, as ``urlopen``'s was)."""
        url = self._gateway + "?" + self.sign_data(data)
        response = self.http.get().get(url, timeout=self._config.timeout)
        response.raise_for_status()
        return self._verify_and_return_sync_response(response.content.decode(), response_type)

    def build_body(self, method: str, biz_content: Any = None, **kwargs: Any) -> dict[str, Any]:
        data = super().build_body(method, biz_content, **kwargs)
        data["timestamp"] = datetime.now(CST).strftime(ALIPAY_TIME_FORMAT)  # Alipay reads it as China time
        return data

    def verify_in(self, data: dict[str, str], signature: str, *, charset: str) -> bool:
        """``AliPay.verify`` over the message encoded in ``charset`` (the SDK always encodes UTF-8, so it cannot
        verify a GBK notify with non-ASCII text: PROTOCOLS F.5). Same string to sign: sorted ``k=v``."""
        message = "&".join(f"{k}={v}" for k, v in self._ordered_data(data))
        digest = SHA256.new(message.encode(charset))
        return bool(PKCS1_v1_5.new(self.alipay_public_key).verify(digest, base64.b64decode(signature)))


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


def trade_status_from(
    data: Mapping[str, Any], *, payment_no: str | None = None, source: Message = Message.QUERY
) -> TradeStatus:
    """Query answer, notification or return -> ``TradeStatus`` (raises ``ValueError`` when malformed)."""
    gateway_state = str(data.get("trade_status", ""))
    state = TRADE_STATES.get(gateway_state)
    out_trade_no = data.get("out_trade_no") or payment_no
    if state is None or not isinstance(out_trade_no, str):
        raise ValueError(f"unexpected trade_status {gateway_state!r}")
    return TradeStatus(
        payment_no=out_trade_no,
        state=state,
        gateway="alipay",
        source=source,
        amount_fen=_optional_fen(data.get("total_amount")),
        gateway_trade_no=data.get("trade_no") or None,
        paid_at=_parse_cst(data.get("gmt_payment") or data.get("send_pay_date")),
        app_id=data.get("app_id"),
        auth_app_id=data.get("auth_app_id"),
        seller_id=data.get("seller_id"),
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

    checks = CHECKS

    def identity(self) -> Identity:
        """The ids every answer and notification must carry (compared by ``CHECKS``)."""
        return Identity(app_id=self.config.app_id, seller_id=self.config.seller_id)

    @staticmethod
    def _call(operation: Callable[[], Any]) -> dict[str, Any]:
        """Run one SDK server call; translate its exceptions; insist on code 10000."""
        try:
            answer = operation()
        except AliPayException as exc:  # unsigned answer or error_response: we cannot trust it
            raise GatewayUnavailable(f"Alipay answer is unsigned or an error_response: {exc}") from exc
        except (TimeoutError, requests.Timeout) as exc:
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
            return trade_status_from(answer, payment_no=payment_no, source=Message.QUERY)
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
        kwargs: dict[str, Any] = {"out_request_no": request.refund_no}
        if request.reason:
            kwargs["refund_reason"] = request.reason
        answer = self._call(
            lambda: self.client.api_alipay_trade_refund(
                refund_amount=fen_to_yuan(request.refund_fen), out_trade_no=request.payment_no, **kwargs
            )
        )
        fund_change = str(answer.get("fund_change", ""))
        try:
            refunded_total, sent_back = (
                _optional_fen(answer.get("refund_fee")),
                _optional_fen(answer.get("send_back_fee")),
            )
        except ValueError as exc:
            raise GatewayUnavailable("Alipay refund answer amounts are malformed.") from exc
        # fund_change=N on a repeated out_request_no means "already refunded before" (PROTOCOLS B.5): ask
        state = RefundState.SUCCEEDED if fund_change == "Y" else RefundState.PROCESSING
        return RefundStatus(
            refund_no=request.refund_no,
            state=state,
            gateway="alipay",
            source=Message.ANSWER,
            payment_no=answer.get("out_trade_no"),
            amount_fen=sent_back,
            refunded_total_fen=refunded_total,
            gateway_refund_id=answer.get("trade_no") and f"{answer['trade_no']}/{request.refund_no}",
            succeeded_at=_parse_cst(answer.get("gmt_refund_pay")) if state is RefundState.SUCCEEDED else None,
            gateway_state="REFUND_SUCCESS" if state is RefundState.SUCCEEDED else f"fund_change={fund_change}",
            raw=answer,
        )

    def query_refund(self, refund_no: str, *, payment_no: str) -> RefundStatus:
        """``REFUND_SUCCESS`` -> SUCCEEDED; another ``refund_status`` -> PROCESSING.

        Alipay documents an absent ``refund_status`` as "not received or failed" (PROTOCOLS B.5): that, and a
        trade Alipay does not know, raise ``RefundNotFound``; re-sending the refund with the same ``refund_no``
        (``out_request_no``) is idempotent and is the way to settle it.
        """
        try:
            answer = self._call(
                lambda: self.client.api_alipay_trade_fastpay_refund_query(
                    out_request_no=refund_no, out_trade_no=payment_no
                )
            )
        except TradeNotFound as exc:
            raise RefundNotFound(exc.message, gateway_code=exc.gateway_code) from exc
        gateway_state = str(answer.get("refund_status", ""))
        if not gateway_state:
            raise RefundNotFound(
                "Alipay's refund query has no refund_status: the refund was not received (or failed).",
                gateway_code="REFUND_NOT_FOUND",
            )
        try:
            amount_fen = _optional_fen(answer.get("refund_amount"))
        except ValueError as exc:
            raise GatewayUnavailable("Alipay refund amount is malformed.") from exc
        try:
            total_fen = _optional_fen(answer.get("total_amount"))
        except ValueError as exc:
            raise GatewayUnavailable("Alipay refund total is malformed.") from exc
        succeeded = gateway_state == "REFUND_SUCCESS"
        return RefundStatus(
            refund_no=answer.get("out_request_no") or refund_no,
            state=RefundState.SUCCEEDED if succeeded else RefundState.PROCESSING,
            gateway="alipay",
            source=Message.QUERY,
            payment_no=answer.get("out_trade_no"),
            amount_fen=amount_fen,
            total_fen=total_fen,
            gateway_refund_id=answer.get("trade_no") and f"{answer['trade_no']}/{refund_no}",
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
            response = self.client.http.get().get(url, timeout=(5, self.config.timeout * 4))
        except requests.RequestException as exc:
            raise GatewayUnavailable("Alipay bill could not be downloaded.") from exc
        if response.status_code != 200:
            raise GatewayUnavailable(f"Alipay bill download answered HTTP {response.status_code}.")
        try:
            return parse_alipay_bill_zip(response.content)
        except (UnicodeDecodeError, ValueError) as exc:
            raise GatewayUnavailable(f"Alipay bill cannot be parsed: {exc}") from exc

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        params, charset = _form_params(body, content_type=_content_type(headers))
        verified = self._verified(params, charset=charset)
        event_id, event_type = verified.get("notify_id"), verified.get("notify_type", "")
        if not event_id:
            raise NotificationInvalid("notification lacks notify_id")
        try:
            trade = trade_status_from(verified, source=Message.NOTIFY)
            refund = _refund_from_notification(verified)
        except ValueError as exc:
            raise NotificationInvalid(f"notification is malformed: {exc}") from exc
        return Notification(event_id=event_id, event_type=event_type, trade=trade, refund=refund)

    def verify_return(self, params: Mapping[str, str]) -> TradeStatus:
        """Verify the ``return_url`` GET parameters (signature, then ``CHECKS`` by the caller) into a
        ``TradeStatus`` whose state is only a hint: the return is never trusted for state, the caller
        queries. Raises ``SignatureInvalid`` / ``NotificationInvalid``."""
        unsigned = dict(params)
        verified = self._verified(unsigned, charset=_codec(unsigned.get("charset") or "utf-8"))
        if not verified.get("out_trade_no"):
            raise NotificationInvalid("return parameters lack out_trade_no")
        return TradeStatus(
            payment_no=verified["out_trade_no"],
            state=TradeState.PENDING,
            gateway="alipay",
            source=Message.RETURN,
            amount_fen=_optional_fen(verified.get("total_amount")),
            gateway_trade_no=verified.get("trade_no") or None,
            app_id=verified.get("app_id"),
            auth_app_id=verified.get("auth_app_id"),
            seller_id=verified.get("seller_id"),
            gateway_state="RETURN",
            raw=verified,
        )

    def notification_reply(self, *, ok: bool, message: str = "") -> NotificationReply:
        return NotificationReply(status=200, content_type="text/plain", body=b"success" if ok else b"fail")

    # -- helpers

    def _verified(self, params: dict[str, str], *, charset: str) -> dict[str, str]:
        """Pop ``sign``; insist on RSA2; verify over the sorted rest (empty values kept) in ``charset``."""
        unsigned = dict(params)
        signature = unsigned.pop("sign", "")
        sign_type = unsigned.pop("sign_type", "")
        if not signature:
            raise SignatureInvalid("missing sign")
        if sign_type != SIGN_TYPE:
            raise SignatureInvalid(f"sign_type must be {SIGN_TYPE}")
        try:
            ok = self.client.verify_in(dict(unsigned), signature, charset=charset)
        except (ValueError, TypeError, binascii.Error, UnicodeEncodeError) as exc:  # bad base64 and friends
            raise SignatureInvalid("sign is not a valid signature") from exc
        if not ok:
            raise SignatureInvalid("Alipay signature does not verify")
        return {**unsigned, "sign_type": sign_type}


def _content_type(headers: Mapping[str, str]) -> str:
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    return lowered.get("content-type", lowered.get("content_type", ""))


def _codec(declared: str) -> str:
    codec = NOTIFY_CHARSETS.get(declared.strip().lower())
    if codec is None:  # we cannot rebuild the signed bytes: it cannot verify
        raise SignatureInvalid(f"unsupported charset {declared[:20]!r}")
    return codec


def _form_params(body: bytes, *, content_type: str = "") -> tuple[dict[str, str], str]:
    """Decode a notify form in the charset it declares (its ``charset`` field, else the Content-Type's,
    else UTF-8): Alipay sends some notifies in GBK, so decoding as UTF-8 breaks their signature."""
    try:
        ascii_pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=True, encoding="latin-1")
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotificationInvalid("notification body is not a form") from exc
    declared = dict(ascii_pairs).get("charset") or _charset_of(content_type) or "utf-8"
    codec = _codec(declared)
    try:
        pairs = parse_qsl(
            body.decode("ascii"), keep_blank_values=True, strict_parsing=True, encoding=codec, errors="strict"
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotificationInvalid(f"notification body is not a {declared} form") from exc
    params = dict(pairs)
    if len(params) != len(pairs):
        raise NotificationInvalid("notification repeats a field")
    return params, codec


def _charset_of(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset":
            return value.strip().strip('"')
    return ""


def _refund_from_notification(data: Mapping[str, str]) -> RefundStatus | None:
    """A trade_status_sync carrying ``out_biz_no`` + ``refund_fee`` also reports a refund that went through.

    ``refund_fee`` is the trade's cumulative refunded amount (PROTOCOLS F.5), checked as such
    (``refunded_total_fen``), never as this refund's amount.
    """
    refund_no = data.get("out_biz_no")
    if not refund_no or not data.get("refund_fee"):
        return None
    return RefundStatus(
        refund_no=refund_no,
        state=RefundState.SUCCEEDED,
        gateway="alipay",
        source=Message.NOTIFY,
        payment_no=data.get("out_trade_no"),
        total_fen=_optional_fen(data.get("total_amount")),
        refunded_total_fen=_optional_fen(data.get("refund_fee")),
        gateway_refund_id=data.get("trade_no") and f"{data['trade_no']}/{refund_no}",
        succeeded_at=_parse_cst(data.get("gmt_refund")),
        app_id=data.get("app_id"),
        gateway_state="REFUND_SUCCESS",
        raw=dict(data),
    )
