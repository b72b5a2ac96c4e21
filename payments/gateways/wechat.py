"""WeChat Pay API v3 adapter over the real ``wechatpayv3`` SDK (pinned to 2.0.4).

The SDK hard-codes its base URL in ``Core.__init__``; ``_ConfiguredCore`` turns ``_gate_way`` into
a property fed from our config (PROTOCOLS A.2 (c)). In certificate mode it also replaces the
SDK's non-atomic write of downloaded platform certificates (several processes share the
directory) and keeps the old certificates when a refresh fails. Its ``request`` sends through one
pooled session per process (``payments.gateways.transport``) instead of the SDK's ``requests.post``
per call, a new connection each time.

Every SDK call goes through ``WeChatGateway._call``: the one place where SDK and transport
exceptions become ``core.errors``.
"""

from __future__ import annotations

import binascii
import json
import logging
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import requests
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3 import __version__ as SDK_VERSION
from wechatpayv3.core import Core
from wechatpayv3.type import RequestType
from wechatpayv3.utils import aes_decrypt, build_authorization, format_private_key, rsa_verify

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
    AbnormalRefundDestination,
    AbnormalRefundRequest,
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
from payments.gateways.bills import BillEntry, read_wechat_bill
from payments.gateways.transport import ProcessSession
from payments.gateways.trust import Check, CheckTable, Identity, Message, gateway_check, subject_check
from payments.gateways.wechat_payscore import PayScoreCalls, is_payscore_event, service_order_from

logger = logging.getLogger(__name__)
PRODUCTION_API_BASE = "https://api.mch.weixin.qq.com"
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
USER_AGENT = f"wechatpay python sdk v{SDK_VERSION}(https://github.com/minibear2021/wechatpayv3)"  # the SDK's own
CERT_REFRESH_MIN_INTERVAL_SECONDS = 60.0
CST = timezone(timedelta(hours=8))

TRADE_STATES: dict[str, TradeState] = {
    "NOTPAY": TradeState.PENDING,
    "USERPAYING": TradeState.PENDING,
    "ACCEPT": TradeState.PENDING,
    "SUCCESS": TradeState.SUCCEEDED,
    "REFUND": TradeState.SUCCEEDED,
    "CLOSED": TradeState.CLOSED,
    "REVOKED": TradeState.CLOSED,
    "PAYERROR": TradeState.FAILED,
}
REFUND_STATES: dict[str, RefundState] = {
    "PROCESSING": RefundState.PROCESSING,
    "SUCCESS": RefundState.SUCCEEDED,
    "CLOSED": RefundState.FAILED,
    "ABNORMAL": RefundState.ABNORMAL,
}
NOT_FOUND_CODES = frozenset({"ORDER_NOT_EXIST", "ORDERNOTEXIST", "RESOURCE_NOT_EXISTS", "RESOURCE_NOT_EXIST"})
RETRYABLE_CODES = frozenset({"SYSTEM_ERROR", "SYSTEMERROR", "FREQUENCY_LIMITED", "BANK_ERROR", "BANKERROR"})
PRODUCTS: dict[str, WeChatPayType] = {
    "jsapi": WeChatPayType.JSAPI,
    "native": WeChatPayType.NATIVE,
    "h5": WeChatPayType.H5,
}
NOTIFY_QUERY = frozenset({Message.NOTIFY, Message.QUERY})
SIGNED = frozenset({Message.NOTIFY, Message.QUERY, Message.ANSWER})  # every message but the (unsigned) bill
# Which field of which message is checked against what (payments.gateways.trust). Sources: the
# transaction and refund objects of /docs/merchant/apis/jsapi-payment/*.html and the notifications of
# /docs/merchant/apis/*/payment-notice.html and refund-result-notice.html (PROTOCOLS A.5-A.8).
CHECKS = CheckTable(
    gateway="wechat",
    trade=(
        subject_check("trade", "out_trade_no"),
        gateway_check(),
        Check("app_id", "appid / 公众账号ID", "WECHAT_APPID", NOTIFY_QUERY | {Message.BILL}),
        Check("merchant_id", "mchid / 商户号", "WECHAT_PAY_MCHID", NOTIFY_QUERY | {Message.BILL}),
        Check("amount_fen", "amount.total", "the payment's amount_fen", NOTIFY_QUERY),
        Check("currency", "amount.currency", "CNY"),
    ),
    refund=(
        subject_check("refund", "out_refund_no"),
        gateway_check(),
        Check("merchant_id", "mchid / 商户号", "WECHAT_PAY_MCHID", frozenset({Message.NOTIFY, Message.BILL})),
        Check("payment_no", "out_trade_no", "the refund's payment_no (any for a Pay Score collection)", SIGNED),
        # always sent; absent refused only for a Pay Score collection, whose out_trade_no is not ours
        # (refunds.services): inbox rows stored before this check replay unchanged
        Check("gateway_trade_no", "transaction_id", "the payment's gateway_trade_no (needed for Pay Score)"),
        Check("amount_fen", "amount.refund", "the refund's amount_fen", SIGNED),
        Check("total_fen", "amount.total", "the payment's amount_fen", SIGNED),
        Check("currency", "amount.currency", "CNY"),
    ),
    envelope=(
        Check(
            "serial",
            "Wechatpay-Serial",
            "WECHAT_PAY_PUBLIC_KEY_ID or a platform certificate in WECHAT_PAY_PLATFORM_CERT_DIR",
            SIGNED,
        ),
        Check(
            "timestamp",
            "Wechatpay-Timestamp",
            "now +- WECHAT_PAY_NOTIFY_MAX_SKEW_SECONDS",
            SIGNED,
        ),
    ),
)
_HEADER_NAMES = ("Signature", "Timestamp", "Nonce", "Serial", "Signature-Type")
_HEX_SERIAL_RE = re.compile(r"[0-9A-Fa-f]{1,64}")


@dataclass(frozen=True)
class WeChatConfig:
    appid: str
    mchid: str
    merchant_serial_no: str
    private_key_pem: str = field(repr=False)
    apiv3_key: str = field(repr=False)
    notify_url: str
    api_base: str = PRODUCTION_API_BASE
    public_key_pem: str | None = None
    public_key_id: str | None = None
    platform_cert_dir: str | None = None
    notify_max_skew_seconds: int = 300
    timeout: tuple[float, float] = (5, 15)
    payscore_service_id: str = ""  # WECHAT_PAYSCORE_SERVICE_ID ("" : Pay Score off)

    @property
    def public_key_mode(self) -> bool:
        return bool(self.public_key_pem and self.public_key_id)


# --------------------------------------------------------------------------- SDK subclasses


class _ConfiguredCore(Core):
    """``Core`` with a configured base URL, a process-safe platform certificate cache and one verifier
    for answers and notifications that accepts exactly the serials we configured.

    During WeChat's move from platform certificates to the WeChat Pay public key a merchant receives
    both kinds of signatures (PROTOCOLS F.1: "During the grey phase you receive both kinds"; the
    official Go and Java SDKs pick the key per message from ``Wechatpay-Serial``). With both the public
    key and a certificate directory configured, a message signed under the public key id or under a
    platform certificate serial is accepted; with one of them, only that one. Like the official SDKs,
    an answer whose ``Wechatpay-Timestamp`` is outside the allowed window is refused.
    """

    def __init__(self, *, gate_way: str, max_skew_seconds: int, clock: Callable[[], float], **kwargs: Any) -> None:
        self._configured_gate_way = gate_way.rstrip("/")
        self._http = ProcessSession(self._configured_gate_way)
        self._refresh_lock = threading.Lock()
        self._last_refresh: float | None = None
        self._max_skew_seconds = max_skew_seconds
        self._clock = clock
        cert_dir = kwargs.get("cert_dir")
        self._certificate_mode = bool(cert_dir)
        if cert_dir:
            os.makedirs(cert_dir, exist_ok=True)
        super().__init__(**kwargs)
        if self._public_key_id and self._certificate_mode:
            try:  # both configured: the certificates are a second way in, not a condition to start
                self._init_certificates()
            except Exception as exc:  # noqa: BLE001 - the public key still verifies
                logger.warning("WeChat Pay platform certificates not loaded (public key in use): %s", exc)

    @property
    def _gate_way(self) -> str:  # type: ignore[override]
        return self._configured_gate_way

    @_gate_way.setter
    def _gate_way(self, _hard_coded: str) -> None:
        """``Core.__init__`` assigns the production URL; our configured one wins."""

    def request(
        self,
        path: str,
        method: RequestType = RequestType.GET,
        data: Any = None,
        skip_verify: bool = False,
        sign_data: Any = None,
        files: Any = None,
        cipher_data: bool = False,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str | bytes]:
        """``Core.request`` of wechatpayv3 2.0.4 (same headers, signature, answer check and return value),
        sent through this process's pooled session instead of a new connection per call."""
        headers = dict(headers or {})
        headers["Content-Type"] = "multipart/form-data" if files else "application/json"
        headers["Accept"] = "application/json"
        headers["User-Agent"] = USER_AGENT
        if self._public_key_id or cipher_data:
            serial = self._public_key_id or hex(self._last_certificate().serial_number)[2:].upper()
            headers["Wechatpay-Serial"] = serial
        headers["Authorization"] = build_authorization(
            path, method.value, self._mchid, self._cert_serial_no, self._private_key, data=sign_data or data
        )
        send: dict[str, Any] = {"headers": headers, "proxies": self._proxy, "timeout": self._timeout}
        if method in (RequestType.POST, RequestType.PATCH, RequestType.PUT):
            if files:  # the SDK's media upload: a form body
                send.update(data=data, files=files)
            else:
                send["json"] = data
        response = self._http.get().request(method.value, self._gate_way + path, **send)
        verify = 200 <= response.status_code < 300 and not skip_verify
        if verify and not self._verify_signature(response.headers, response.text):
            raise Exception("failed to verify the signature")
        json_answer = "application/json" in response.headers.get("Content-Type", "")
        return response.status_code, response.text if json_answer else response.content

    def _update_certificates(self) -> None:
        """Refresh from ``/v3/certificates``; keep the old set on failure; write files atomically."""
        if not self._certificate_mode:
            return  # public-key mode only never downloads platform certificates
        with self._refresh_lock:
            now = time.monotonic()
            recent = self._last_refresh is not None and now - self._last_refresh < CERT_REFRESH_MIN_INTERVAL_SECONDS
            if recent and self._certificates:
                return  # a forged serial must not make us hammer the gateway
            self._last_refresh = now
            previous = list(self._certificates)
            cert_dir, self._cert_dir = self._cert_dir, None  # disable the SDK's own non-atomic write
            try:
                super()._update_certificates()
            except Exception:
                self._certificates[:] = previous
                raise
            finally:
                self._cert_dir = cert_dir
            if not self._certificates:
                self._certificates[:] = previous
                return
            if cert_dir:
                for certificate in self._certificates:
                    _write_certificate_atomically(cert_dir, certificate)

    def _last_certificate(self) -> Any:
        """The platform certificate that expires last (the SDK encrypts sensitive fields with it in certificate
        mode), read through the timezone-aware ``not_valid_after_utc``."""
        if not self._certificates:
            self._update_certificates()
        return max(self._certificates, key=lambda certificate: certificate.not_valid_after_utc)

    def verifier_for(self, serial: str) -> Any | None:
        """The public key for a ``Wechatpay-Serial``, or None when the serial is not one we configured."""
        if self._public_key_id and serial == self._public_key_id:
            return self._public_key
        if not self._certificate_mode or not _HEX_SERIAL_RE.fullmatch(serial):
            return None
        number = int(serial, 16)
        for attempt in range(2):
            for certificate in self._certificates:
                if certificate.serial_number == number:
                    return certificate.public_key()
            if attempt == 0:
                self._update_certificates()  # a renewed certificate: one (rate-limited) download
        return None

    def refusal(self, wanted: Mapping[str, str], body: str) -> str | None:
        """Why a signed message (answer or notification) is refused, or None when it verifies."""
        if wanted["Wechatpay-Signature-Type"] != SIGNATURE_TYPE:
            return "unsupported Wechatpay-Signature-Type"
        serial, signature = wanted["Wechatpay-Serial"], wanted["Wechatpay-Signature"]
        if not signature or not serial:
            return "missing Wechatpay-Signature or Wechatpay-Serial"
        key = self.verifier_for(serial)
        if key is None:
            return "unknown Wechatpay-Serial"
        if not rsa_verify(wanted["Wechatpay-Timestamp"], wanted["Wechatpay-Nonce"], body, signature, key):
            return "signature does not verify"
        try:
            sent_at = int(wanted["Wechatpay-Timestamp"])
        except ValueError:
            return "bad Wechatpay-Timestamp"
        if abs(self._clock() - sent_at) > self._max_skew_seconds:
            return "stale (Wechatpay-Timestamp outside the allowed window)"
        return None

    def _verify_signature(self, headers: Mapping[str, str], body: str) -> bool:
        """The SDK's answer check (``Core.request``), replaced by ``refusal``."""
        reason = self.refusal(_header_lookup(headers), body)
        if reason:
            logger.warning("WeChat Pay answer refused: %s", reason)
        return reason is None


def _write_certificate_atomically(cert_dir: str, certificate: Any) -> None:
    """Temp file in the same directory (not ``*.pem``, so never loaded half-written) + ``os.replace``."""
    target = os.path.join(cert_dir, f"{certificate.serial_number:X}.pem")
    fd, tmp_path = tempfile.mkstemp(dir=cert_dir, prefix=".cert-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(certificate.public_bytes(Encoding.PEM))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
        raise


class _ConfiguredWeChatPay(WeChatPay):
    """``WeChatPay`` built around ``_ConfiguredCore`` (same attributes ``WeChatPay.__init__`` sets)."""

    def __init__(self, config: WeChatConfig, *, clock: Callable[[], float] = time.time) -> None:  # not super()
        self._type = WeChatPayType.JSAPI
        self._mchid = config.mchid
        self._appid = config.appid
        self._notify_url = config.notify_url
        self._partner_mode = False
        public_key_mode = config.public_key_mode
        self._core = _ConfiguredCore(
            gate_way=config.api_base or PRODUCTION_API_BASE,
            max_skew_seconds=config.notify_max_skew_seconds,
            clock=clock,
            mchid=config.mchid,
            cert_serial_no=config.merchant_serial_no,
            private_key=config.private_key_pem,
            apiv3_key=config.apiv3_key,
            cert_dir=config.platform_cert_dir or None,
            timeout=config.timeout,
            public_key=config.public_key_pem if public_key_mode else None,
            public_key_id=config.public_key_id if public_key_mode else None,
        )


# --------------------------------------------------------------------------- helpers


def _rfc3339_cst(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValidationFailed("expires_at must be timezone-aware")
    return moment.astimezone(CST).isoformat(timespec="seconds")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _json_object(body: str | bytes) -> dict[str, Any]:
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def _amount_int(value: Any) -> int | None:
    return value if type(value) is int else None


def _header_lookup(headers: Mapping[str, str]) -> dict[str, str]:
    """Canonical ``Wechatpay-*`` headers from a dict, Django ``request.headers`` or ``request.META``."""
    lowered = {str(k).lower(): v for k, v in headers.items()}
    found: dict[str, str] = {}
    for suffix in _HEADER_NAMES:
        name = f"wechatpay-{suffix.lower()}"
        meta = "http_" + name.replace("-", "_")
        value = lowered.get(name, lowered.get(meta, ""))
        found[f"Wechatpay-{suffix}"] = str(value).strip()
    return found


def trade_status_from(data: Mapping[str, Any], *, source: Message = Message.QUERY) -> TradeStatus:
    """Query answer or decrypted ``TRANSACTION.*`` resource -> ``TradeStatus`` (checked later against ``CHECKS``)."""
    gateway_state = str(data.get("trade_state", ""))
    state = TRADE_STATES.get(gateway_state)
    payment_no = data.get("out_trade_no")
    if state is None or not isinstance(payment_no, str):
        raise ValueError(f"unexpected trade answer (trade_state={gateway_state!r})")
    amount = data.get("amount") if isinstance(data.get("amount"), dict) else {}
    return TradeStatus(
        payment_no=payment_no,
        state=state,
        gateway="wechat",
        source=source,
        amount_fen=_amount_int(amount.get("total")),
        gateway_trade_no=data.get("transaction_id") or None,
        paid_at=_parse_time(data.get("success_time")),
        app_id=data.get("appid"),
        merchant_id=data.get("mchid"),
        currency=amount.get("currency"),
        gateway_state=gateway_state,
        raw=dict(data),
    )


def refund_status_from(data: Mapping[str, Any], *, source: Message = Message.QUERY) -> RefundStatus:
    """Refund answer (``status``) or decrypted ``REFUND.*`` resource (``refund_status``) -> ``RefundStatus``."""
    gateway_state = str(data.get("status") or data.get("refund_status") or "")
    state = REFUND_STATES.get(gateway_state)
    refund_no = data.get("out_refund_no")
    if state is None or not isinstance(refund_no, str):
        raise ValueError(f"unexpected refund answer (status={gateway_state!r})")
    amount = data.get("amount") if isinstance(data.get("amount"), dict) else {}
    return RefundStatus(
        refund_no=refund_no,
        state=state,
        gateway="wechat",
        source=source,
        payment_no=data.get("out_trade_no"),
        gateway_trade_no=data.get("transaction_id") or None,
        amount_fen=_amount_int(amount.get("refund")),
        total_fen=_amount_int(amount.get("total")),
        gateway_refund_id=data.get("refund_id"),
        succeeded_at=_parse_time(data.get("success_time")),
        merchant_id=data.get("mchid"),
        currency=amount.get("currency"),
        gateway_state=gateway_state,
        raw=dict(data),
    )


def _error_from_answer(status: int, body: str | bytes) -> Exception:
    """A non-2xx answer ``{code, message}`` -> our error (the HTTP status is not signed)."""
    try:
        data = _json_object(body)
        code, message = str(data.get("code", "")), str(data.get("message", ""))
    except ValueError:
        code, message = "", ""
    details = {"http_status": status}
    if status >= 500 or status == 429 or code in RETRYABLE_CODES or not code:
        return GatewayUnavailable(f"WeChat Pay answered HTTP {status} {code}".strip(), details=details)
    if code in NOT_FOUND_CODES:
        return TradeNotFound(message or code, gateway_code=code, details=details)
    if code == "ORDERPAID":
        return TradeAlreadyPaid(message or code, gateway_code=code, details=details)
    return GatewayRejected(message or code, gateway_code=code, details=details)


# --------------------------------------------------------------------------- the gateway


class WeChatGateway(PayScoreCalls):
    name = "wechat"

    def __init__(self, config: WeChatConfig, *, clock: Callable[[], float] = time.time) -> None:
        _check_config(config)
        self.config = config
        self._clock = clock
        self._client: _ConfiguredWeChatPay | None = None
        self._client_lock = threading.Lock()

    # -- SDK access, the one translation point

    checks = CHECKS

    def identity(self) -> Identity:
        """The ids every answer and notification must carry (compared by ``CHECKS``)."""
        return Identity(app_id=self.config.appid, merchant_id=self.config.mchid)

    def client(self) -> _ConfiguredWeChatPay:
        """The SDK client, built on first use (certificate mode downloads certificates)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._call(lambda: _ConfiguredWeChatPay(self.config, clock=self._clock))
        return self._client

    @staticmethod
    def _call(operation: Callable[[], Any]) -> Any:
        try:
            return operation()
        except DomainError:
            raise
        except requests.Timeout as exc:
            raise GatewayUnavailable("WeChat Pay timed out.") from exc
        except requests.RequestException as exc:
            raise GatewayUnavailable("WeChat Pay could not be reached.") from exc
        except ValueError as exc:  # non-hex serial in certificate mode, bad JSON in a certificate answer
            raise GatewayUnavailable("WeChat Pay answer could not be verified.") from exc
        except Exception as exc:  # the SDK raises bare Exception for unverifiable answers
            raise GatewayUnavailable(f"WeChat Pay answer could not be verified: {exc}") from exc

    def _request(self, operation: Callable[[_ConfiguredWeChatPay], tuple[int, str | bytes]]) -> tuple[int, Any]:
        client = self.client()
        status, body = self._call(lambda: operation(client))
        if not 200 <= status < 300:
            raise _error_from_answer(status, body)
        if status == 204 or not body:
            return status, {}
        try:
            return status, _json_object(body)
        except ValueError as exc:
            raise GatewayUnavailable("WeChat Pay answer is not a JSON object.") from exc

    # -- protocol

    def create(self, request: PrepayRequest) -> PrepayResult:
        pay_type = PRODUCTS.get(request.product)
        if pay_type is None:
            raise ValidationFailed(f"WeChat Pay does not support product {request.product!r}")
        kwargs = self._prepay_kwargs(request, pay_type)
        _, answer = self._request(lambda c: c.pay(**kwargs))
        try:
            if pay_type is WeChatPayType.NATIVE:
                return PrepayResult(code_url=_required_str(answer, "code_url"), raw=answer)
            if pay_type is WeChatPayType.H5:
                return PrepayResult(h5_url=_required_str(answer, "h5_url"), raw=answer)
            prepay_id = _required_str(answer, "prepay_id")
        except ValueError as exc:
            raise GatewayUnavailable(str(exc)) from exc
        return PrepayResult(pay_params=self.jsapi_pay_params(prepay_id=prepay_id), raw=answer)

    def _prepay_kwargs(self, request: PrepayRequest, pay_type: WeChatPayType) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "description": request.description,
            "out_trade_no": request.payment_no,
            "amount": {"total": request.amount_fen, "currency": "CNY"},
            "time_expire": _rfc3339_cst(request.expires_at),
            "notify_url": request.notify_url or self.config.notify_url,
            "pay_type": pay_type,
        }
        if pay_type is WeChatPayType.JSAPI:
            if not request.openid:
                raise ValidationFailed("WeChat JSAPI needs the payer's openid")
            kwargs["payer"] = {"openid": request.openid}
        if pay_type is WeChatPayType.H5:
            if not request.client_ip:
                raise ValidationFailed("WeChat H5 needs the payer's client IP")
            kwargs["scene_info"] = {"payer_client_ip": request.client_ip, "h5_info": {"type": "Wap"}}
        return kwargs

    def jsapi_pay_params(self, *, prepay_id: str) -> dict[str, str]:
        """``wx.requestPayment`` parameters, signed per PROTOCOLS A.9."""
        time_stamp = str(int(self._clock()))
        nonce = uuid.uuid4().hex
        package = f"prepay_id={prepay_id}"
        client = self.client()
        pay_sign = self._call(lambda: client.sign([self.config.appid, time_stamp, nonce, package]))
        return {
            "appId": self.config.appid,
            "timeStamp": time_stamp,
            "nonceStr": nonce,
            "package": package,
            "signType": "RSA",
            "paySign": pay_sign,
        }

    def query(self, payment_no: str) -> TradeStatus:
        _, answer = self._request(lambda c: c.query(out_trade_no=payment_no))
        return _parsed(trade_status_from, answer)

    def close(self, payment_no: str) -> None:
        try:
            self._request(lambda c: c.close(out_trade_no=payment_no))
        except GatewayRejected as exc:
            if exc.gateway_code != "ORDER_CLOSED":
                raise

    def refund(self, request: RefundRequest) -> RefundStatus:
        """``POST /v3/refund/domestic/refunds`` naming the trade by our ``out_trade_no`` (= payment_no), or by
        ``transaction_id`` when ``request.by_gateway_trade_no``: a WeChat Pay Score collection, which is refunded
        through this same API by the ``transaction_id`` of its ``collection.details`` (the out_trade_no of that
        trade is generated by WeChat while it collects, so it is not ours: pay.weixin.qq.com
        /docs/merchant/apis/weixin-pay-score/refunds/create.html, "建议商户都通过transaction_id申请退款"; the
        SDK sends ``transaction_id`` instead of ``out_trade_no`` when given both, wechatpayv3 2.0.4
        ``transaction.refund``). The answer and the ``REFUND.*`` notification carry both ids."""
        if request.by_gateway_trade_no and not request.gateway_trade_no:
            raise ValidationFailed("The trade's transaction_id is needed to refund it.")
        trade = (
            {"transaction_id": request.gateway_trade_no}
            if request.by_gateway_trade_no
            else {"out_trade_no": request.payment_no}
        )
        kwargs: dict[str, Any] = {
            "out_refund_no": request.refund_no,
            "amount": {"refund": request.refund_fen, "total": request.total_fen, "currency": "CNY"},
            **trade,
            "reason": request.reason or None,
            "notify_url": request.notify_url or self.config.notify_url,
        }
        _, answer = self._request(lambda c: c.refund(**kwargs))
        return _parsed(lambda a: refund_status_from(a, source=Message.ANSWER), answer)

    def query_refund(self, refund_no: str, *, payment_no: str) -> RefundStatus:
        """Raises ``RefundNotFound`` when WeChat answers 404 (``RESOURCE_NOT_EXISTS``): the refund never reached it."""
        try:
            _, answer = self._request(lambda c: c.query_refund(out_refund_no=refund_no))
        except TradeNotFound as exc:
            raise RefundNotFound(exc.message, gateway_code=exc.gateway_code) from exc
        return _parsed(refund_status_from, answer)

    def apply_abnormal_refund(self, request: AbnormalRefundRequest) -> RefundStatus:
        """Apply for an ``ABNORMAL`` refund to be paid to a bank card (PROTOCOLS F.2):
        ``POST /v3/refund/domestic/refunds/{refund_id}/apply-abnormal-refund`` through the SDK's
        ``abnormal_refund``, which encrypts ``bank_account`` and ``real_name`` (RSA-OAEP, the WeChat Pay public
        key, else the latest platform certificate) and sends ``Wechatpay-Serial``. WeChat answers the refund
        object (``PROCESSING`` until it pays out; ``REFUND.SUCCESS`` follows). ``USER_BANK_CARD`` needs all
        three bank fields (the SDK does not check): ``ValidationFailed`` before anything is sent."""
        destination = AbnormalRefundDestination(request.destination)
        if not request.gateway_refund_id:
            raise ValidationFailed("WeChat's refund_id is needed to apply for an abnormal refund.")
        kwargs: dict[str, Any] = {
            "refund_id": request.gateway_refund_id,
            "out_refund_no": request.refund_no,
            "type": destination.value,
        }
        if destination is AbnormalRefundDestination.USER_BANK_CARD:
            missing = [n for n in ("bank_type", "bank_account", "real_name") if not getattr(request, n)]
            if missing:
                raise ValidationFailed(
                    "A refund to the user's bank card needs the bank and the account holder.",
                    details={"missing": missing},
                )
            kwargs.update(bank_type=request.bank_type, bank_account=request.bank_account, real_name=request.real_name)
        _, answer = self._request(lambda c: c.abnormal_refund(**kwargs))
        return _parsed(lambda a: refund_status_from(a, source=Message.ANSWER), answer)

    def bill(self, bill_date: date) -> list[BillEntry]:
        """The day's ``ALL`` trade bill: apply, download (gzip), check the SHA1 of the uncompressed CSV, parse.

        ``NO_STATEMENT_EXIST`` (a day without trades) is an empty bill. A hash mismatch, a download
        from another host or an unreadable file raise ``GatewayUnavailable`` (retry later).
        """
        try:
            _, answer = self._request(
                lambda c: c.trade_bill(bill_date=bill_date.isoformat(), bill_type="ALL", tar_type="GZIP")
            )
        except GatewayRejected as exc:
            if exc.gateway_code == "NO_STATEMENT_EXIST":
                return []
            raise
        url, hash_value = answer.get("download_url"), answer.get("hash_value")
        if not isinstance(url, str) or not isinstance(hash_value, str) or answer.get("hash_type", "SHA1") != "SHA1":
            raise GatewayUnavailable("WeChat Pay bill answer lacks download_url or a SHA1 hash_value.")
        client = self.client()
        if not url.startswith(client._core._gate_way + "/"):
            raise GatewayUnavailable("WeChat Pay bill download_url is not on the API host.")
        status, body = self._call(lambda: client.download_bill(url))
        if not 200 <= status < 300:
            raise _error_from_answer(status, body)
        try:
            return read_wechat_bill(body if isinstance(body, bytes) else body.encode("utf-8"), hash_value=hash_value)
        except ValueError as exc:
            raise GatewayUnavailable(
                f"WeChat Pay bill of {bill_date}: {exc}", details={"bill_date": str(bill_date)}
            ) from exc

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotificationInvalid("notification body is not UTF-8") from exc
        self._verify_notification_signature(_header_lookup(headers), text)
        try:
            envelope = _json_object(text)
        except ValueError as exc:
            raise NotificationInvalid("notification body is not a JSON object") from exc
        resource = self._decrypt_resource(envelope)
        return self._notification_from(envelope, resource)

    def notification_reply(self, *, ok: bool, message: str = "") -> NotificationReply:
        if ok:
            return NotificationReply(status=204, content_type="text/plain", body=b"")
        payload = {"code": "FAIL", "message": message or "failed"}
        return NotificationReply(
            status=500,
            content_type="application/json",
            body=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
        )

    # -- notification helpers

    def _verify_notification_signature(self, wanted: dict[str, str], text: str) -> None:
        client = self.client()
        reason = self._call(lambda: client._core.refusal(wanted, text))
        if reason is None:
            return
        if reason.startswith(("stale", "bad Wechatpay-Timestamp")):
            raise NotificationInvalid(f"{reason} notification")
        raise SignatureInvalid(f"WeChat Pay notification refused: {reason}")

    def _decrypt_resource(self, envelope: Mapping[str, Any]) -> dict[str, Any]:
        resource = envelope.get("resource")
        if envelope.get("resource_type") != "encrypt-resource" or not isinstance(resource, dict):
            raise NotificationInvalid("notification has no encrypted resource")
        if resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise NotificationInvalid("unsupported resource algorithm")
        nonce, ciphertext = resource.get("nonce"), resource.get("ciphertext")
        associated_data = resource.get("associated_data") or ""
        if not all(isinstance(v, str) and v for v in (nonce, ciphertext)) or not isinstance(associated_data, str):
            raise NotificationInvalid("incomplete encrypted resource")
        try:
            plaintext = aes_decrypt(nonce, ciphertext, associated_data, self.config.apiv3_key)
        except (ValueError, binascii.Error) as exc:
            raise SignatureInvalid("notification resource cannot be decrypted") from exc
        if plaintext is None:
            raise SignatureInvalid("notification resource fails authentication (AES-GCM tag)")
        try:
            return _json_object(plaintext)
        except ValueError as exc:
            raise NotificationInvalid("decrypted resource is not a JSON object") from exc

    def _notification_from(self, envelope: Mapping[str, Any], resource: dict[str, Any]) -> Notification:
        event_id, event_type = envelope.get("id"), envelope.get("event_type")
        if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
            raise NotificationInvalid("notification lacks id or event_type")
        self._refuse_foreign(resource, event_type=event_type)
        try:
            if event_type.startswith("TRANSACTION."):
                trade = trade_status_from(resource, source=Message.NOTIFY)
                return Notification(event_id=event_id, event_type=event_type, trade=trade)
            if event_type.startswith("REFUND."):
                refund = refund_status_from(resource, source=Message.NOTIFY)
                return Notification(event_id=event_id, event_type=event_type, refund=refund)
            if is_payscore_event(event_type):
                order = service_order_from(resource, source=Message.NOTIFY)
                return Notification(event_id=event_id, event_type=event_type, service_order=order)
        except ValueError as exc:
            raise NotificationInvalid(f"cannot read {event_type} resource: {exc}") from exc
        return Notification(event_id=event_id, event_type=event_type)

    def _refuse_foreign(self, resource: Mapping[str, Any], *, event_type: str) -> None:
        """A service-provider (partner mode) message is never ours. Payment and refund words are compared with
        our payment by ``CHECKS``; any other event (Pay Score, ...) that names another merchant or app stops
        here, since nothing else looks at it."""
        if "sp_mchid" in resource or "sp_appid" in resource:
            raise NotificationInvalid("notification is for a service provider (sp_mchid)")
        if event_type.startswith(("TRANSACTION.", "REFUND.")) or is_payscore_event(event_type):
            return  # checked field by field (CHECKS, PAYSCORE_CHECKS)
        if resource.get("mchid", self.config.mchid) != self.config.mchid:
            raise NotificationInvalid("notification is for another merchant (mchid)")
        if resource.get("appid", self.config.appid) != self.config.appid:
            raise NotificationInvalid("notification is for another app (appid)")


def _required_str(answer: Mapping[str, Any], key: str) -> str:
    value = answer.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"WeChat Pay answer lacks {key}")
    return value


def _parsed(reader: Callable[[Mapping[str, Any]], Any], answer: Mapping[str, Any]) -> Any:
    try:
        return reader(answer)
    except ValueError as exc:
        raise GatewayUnavailable(f"WeChat Pay answer is malformed: {exc}") from exc


def _check_config(config: WeChatConfig) -> None:
    """Cheap local checks (no I/O) so that a wrong key fails at construction, not mid-payment."""
    if len(config.apiv3_key.encode("utf-8")) not in (16, 24, 32):  # real keys are 32; the registry insists
        raise ChannelNotConfigured("The WeChat Pay APIv3 key must be an AES key (32 bytes).")
    try:
        load_pem_private_key(format_private_key(config.private_key_pem).encode("utf-8"), password=None)
    except (ValueError, TypeError) as exc:
        raise ChannelNotConfigured(
            "The WeChat Pay merchant private key cannot be loaded.", details={"setting": "private_key_pem"}
        ) from exc
    if bool(config.public_key_pem) != bool(config.public_key_id):
        raise ChannelNotConfigured("WeChat Pay public-key mode needs both the public key and its id.")
    if not config.public_key_mode and not config.platform_cert_dir:  # both may be set (the key switch)
        raise ChannelNotConfigured("WeChat Pay needs a platform public key (+ id) or a platform certificate dir.")
