"""WeChat Pay API v3 adapter over the real ``wechatpayv3`` SDK (pinned to 2.0.4).

The SDK hard-codes its base URL in ``Core.__init__``; ``_ConfiguredCore`` turns ``_gate_way`` into
a property fed from our config (PROTOCOLS A.2 (c)). In certificate mode it also replaces the
SDK's non-atomic write of downloaded platform certificates (several processes share the
directory) and keeps the old certificates when a refresh fails.

Every SDK call goes through ``WeChatGateway._call``: the one place where SDK and transport
exceptions become ``config.errors``.
"""

from __future__ import annotations

import binascii
import json
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
from wechatpayv3.core import Core
from wechatpayv3.utils import aes_decrypt, format_private_key

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
from payments.gateways.bills import BillEntry, read_wechat_bill

PRODUCTION_API_BASE = "https://api.mch.weixin.qq.com"
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
MAX_NOTIFICATION_BYTES = 256 * 1024
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

    @property
    def public_key_mode(self) -> bool:
        return bool(self.public_key_pem and self.public_key_id)


# --------------------------------------------------------------------------- SDK subclasses


class _ConfiguredCore(Core):
    """``Core`` with a configured base URL and a process-safe platform certificate cache."""

    def __init__(self, *, gate_way: str, **kwargs: Any) -> None:
        self._configured_gate_way = gate_way.rstrip("/")
        self._refresh_lock = threading.Lock()
        self._last_refresh: float | None = None
        cert_dir = kwargs.get("cert_dir")
        if cert_dir:
            os.makedirs(cert_dir, exist_ok=True)
        super().__init__(**kwargs)

    @property
    def _gate_way(self) -> str:  # type: ignore[override]
        return self._configured_gate_way

    @_gate_way.setter
    def _gate_way(self, _hard_coded: str) -> None:
        """``Core.__init__`` assigns the production URL; our configured one wins."""

    def _update_certificates(self) -> None:
        """Refresh from ``/v3/certificates``; keep the old set on failure; write files atomically."""
        if self._public_key_id:
            return  # public-key mode never downloads platform certificates
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

    def __init__(self, config: WeChatConfig) -> None:  # deliberately not calling super()
        self._type = WeChatPayType.JSAPI
        self._mchid = config.mchid
        self._appid = config.appid
        self._notify_url = config.notify_url
        self._partner_mode = False
        public_key_mode = config.public_key_mode
        self._core = _ConfiguredCore(
            gate_way=config.api_base or PRODUCTION_API_BASE,
            mchid=config.mchid,
            cert_serial_no=config.merchant_serial_no,
            private_key=config.private_key_pem,
            apiv3_key=config.apiv3_key,
            cert_dir=None if public_key_mode else config.platform_cert_dir,
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


def trade_status_from(data: Mapping[str, Any]) -> TradeStatus:
    """Query answer or decrypted ``TRANSACTION.*`` resource -> ``TradeStatus``."""
    gateway_state = str(data.get("trade_state", ""))
    state = TRADE_STATES.get(gateway_state)
    payment_no = data.get("out_trade_no")
    if state is None or not isinstance(payment_no, str):
        raise ValueError(f"unexpected trade answer (trade_state={gateway_state!r})")
    amount = data.get("amount") if isinstance(data.get("amount"), dict) else {}
    return TradeStatus(
        payment_no=payment_no,
        state=state,
        amount_fen=_amount_int(amount.get("total")),
        gateway_trade_no=data.get("transaction_id") or None,
        paid_at=_parse_time(data.get("success_time")),
        app_id=data.get("appid"),
        merchant_id=data.get("mchid"),
        gateway_state=gateway_state,
        raw=dict(data),
    )


def refund_status_from(data: Mapping[str, Any]) -> RefundStatus:
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
        payment_no=data.get("out_trade_no"),
        amount_fen=_amount_int(amount.get("refund")),
        gateway_refund_id=data.get("refund_id"),
        succeeded_at=_parse_time(data.get("success_time")),
        merchant_id=data.get("mchid"),
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


class WeChatGateway:
    name = "wechat"

    def __init__(self, config: WeChatConfig, *, clock: Callable[[], float] = time.time) -> None:
        _check_config(config)
        self.config = config
        self._clock = clock
        self._client: _ConfiguredWeChatPay | None = None
        self._client_lock = threading.Lock()

    # -- SDK access, the one translation point

    def identity(self) -> tuple[str, str]:
        """(app id, merchant id) every answer and notification must carry."""
        return self.config.appid, self.config.mchid

    def client(self) -> _ConfiguredWeChatPay:
        """The SDK client, built on first use (certificate mode downloads certificates)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._call(lambda: _ConfiguredWeChatPay(self.config))
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
        if type(request.amount_fen) is not int or request.amount_fen <= 0:
            raise ValidationFailed("amount_fen must be a positive int")
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
        if type(request.refund_fen) is not int or request.refund_fen <= 0 or type(request.total_fen) is not int:
            raise ValidationFailed("refund_fen must be a positive int and total_fen an int")
        kwargs: dict[str, Any] = {
            "out_refund_no": request.refund_no,
            "amount": {"refund": request.refund_fen, "total": request.total_fen, "currency": "CNY"},
            "out_trade_no": request.payment_no,
            "reason": request.reason or None,
            "notify_url": request.notify_url or self.config.notify_url,
        }
        _, answer = self._request(lambda c: c.refund(**kwargs))
        return _parsed(refund_status_from, answer)

    def query_refund(self, refund_no: str, *, payment_no: str) -> RefundStatus:
        _, answer = self._request(lambda c: c.query_refund(out_refund_no=refund_no))
        return _parsed(refund_status_from, answer)

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
        if len(body) > MAX_NOTIFICATION_BYTES:
            raise NotificationInvalid("notification body too large")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotificationInvalid("notification body is not UTF-8") from exc
        wanted = _header_lookup(headers)
        self._verify_notification_signature(wanted, text)
        self._check_fresh(wanted["Wechatpay-Timestamp"])
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
        serial = wanted["Wechatpay-Serial"]
        if wanted["Wechatpay-Signature-Type"] != SIGNATURE_TYPE:
            raise SignatureInvalid("unsupported Wechatpay-Signature-Type")
        if not wanted["Wechatpay-Signature"] or not serial:
            raise SignatureInvalid("missing Wechatpay-Signature or Wechatpay-Serial")
        if self.config.public_key_mode:
            if serial != self.config.public_key_id:
                raise SignatureInvalid("unknown Wechatpay-Serial")
        elif not _HEX_SERIAL_RE.fullmatch(serial):
            raise SignatureInvalid("unknown Wechatpay-Serial")
        client = self.client()
        if not self._call(lambda: client._core._verify_signature(wanted, text)):
            raise SignatureInvalid("WeChat Pay notification signature does not verify")

    def _check_fresh(self, timestamp: str) -> None:
        try:
            sent_at = int(timestamp)
        except ValueError as exc:
            raise NotificationInvalid("bad Wechatpay-Timestamp") from exc
        if abs(self._clock() - sent_at) > self.config.notify_max_skew_seconds:
            raise NotificationInvalid("stale notification (Wechatpay-Timestamp outside the allowed window)")

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
        self._check_identity(resource, event_type=event_type)
        try:
            if event_type.startswith("TRANSACTION."):
                return Notification(event_id=event_id, event_type=event_type, trade=trade_status_from(resource))
            if event_type.startswith("REFUND."):
                return Notification(event_id=event_id, event_type=event_type, refund=refund_status_from(resource))
        except ValueError as exc:
            raise NotificationInvalid(f"cannot read {event_type} resource: {exc}") from exc
        return Notification(event_id=event_id, event_type=event_type)

    def _check_identity(self, resource: Mapping[str, Any], *, event_type: str) -> None:
        """Belt and braces: the service compares again with the payment, but a foreign mchid/appid stops here."""
        about_money = event_type.startswith(("TRANSACTION.", "REFUND."))
        if "sp_mchid" in resource or (about_money and "mchid" not in resource):
            raise NotificationInvalid("notification lacks our mchid")
        if "mchid" in resource and resource["mchid"] != self.config.mchid:
            raise NotificationInvalid("notification is for another merchant (mchid)")
        if event_type.startswith("TRANSACTION.") and "appid" not in resource:
            raise NotificationInvalid("notification lacks appid")
        if "appid" in resource and resource["appid"] != self.config.appid:
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
    if not config.public_key_mode and not config.platform_cert_dir:
        raise ChannelNotConfigured("WeChat Pay needs a platform public key (+ id) or a platform certificate dir.")
