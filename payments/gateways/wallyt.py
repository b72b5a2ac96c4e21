"""Wallyt (SwiftPass-family ``/pay/gateway``) adapter: our own small client.

Flat XML over HTTP POST, signed with MD5 (a shared key) or RSA_1_256 (SHA256withRSA: our private key
signs requests, the platform public key verifies answers and notifications) (PROTOCOLS C.3, F.6).
Untrusted XML is parsed only with ``defusedxml`` (no DTDs, no entities, no external references),
capped at 64 KiB and must be flat ``<xml><k>v</k>...</xml>``. Layers, as the protocol defines them:
``status`` (transport, unsigned) first; only when it is ``"0"`` is the signature checked and the
business fields (``result_code``, ``err_code``...) read. ``WallytGateway._post`` is the one place
where transport and protocol failures become ``core.errors``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from xml.etree.ElementTree import ParseError
from xml.sax.saxutils import escape

import defusedxml
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from defusedxml.ElementTree import fromstring

from core.errors import (
    ChannelNotConfigured,
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
from payments.gateways.bills import Bill, parse_wallyt_bill
from payments.gateways.keys import load_private_key, load_public_key
from payments.gateways.transport import ProcessSession
from payments.gateways.trust import Check, CheckTable, Identity, Message, gateway_check, subject_check

MAX_XML_BYTES = 64 * 1024
CST = timezone(timedelta(hours=8))
WALLYT_TIME_FORMAT = "%Y%m%d%H%M%S"
SUPPORTED_SIGN_TYPES = frozenset({"MD5", "RSA_1_256"})
NOTIFY_QUERY = frozenset({Message.NOTIFY, Message.QUERY})
ANSWER_QUERY = frozenset({Message.ANSWER, Message.QUERY})
SIGNED = frozenset({Message.NOTIFY, Message.QUERY, Message.ANSWER})
# Which field of which message is checked against what (payments.gateways.trust). Sources: the notify
# fields of PROTOCOLS C.4 (mch_id, sub_appid, out_trade_no, total_fee, fee_type) and the query / refund
# answers of C.2; sub_appid is the mini-program the payment was made in (WECHAT_MINI_APPID).
CHECKS = CheckTable(
    gateway="wallyt",
    trade=(
        subject_check("trade", "out_trade_no"),
        gateway_check(),
        Check("merchant_id", "mch_id / 商户号", "WALLYT_MCH_ID", NOTIFY_QUERY | {Message.BILL}),
        Check("sub_app_id", "sub_appid", "WECHAT_MINI_APPID", frozenset({Message.NOTIFY})),
        Check("amount_fen", "total_fee", "the payment's amount_fen", NOTIFY_QUERY),
        Check("currency", "fee_type", "CNY"),
    ),
    refund=(
        subject_check("refund", "out_refund_no / out_refund_no_$n"),
        gateway_check(),
        Check("merchant_id", "mch_id / 商户号", "WALLYT_MCH_ID", ANSWER_QUERY | {Message.BILL}),
        Check("payment_no", "out_trade_no", "the refund's payment_no"),
        Check("amount_fen", "refund_fee / refund_fee_$n", "the refund's amount_fen", ANSWER_QUERY),
        Check("total_fen", "total_fee", "the payment's amount_fen"),
    ),
    envelope=(Check("sign_type", "sign_type", "WALLYT_SIGN_TYPE (no downgrade to another)", SIGNED),),
)

TRADE_STATES: dict[str, TradeState] = {
    "NOTPAY": TradeState.PENDING,
    "USERPAYING": TradeState.PENDING,
    "SUCCESS": TradeState.SUCCEEDED,
    "REFUND": TradeState.SUCCEEDED,
    "CLOSED": TradeState.CLOSED,
    "REVERSE": TradeState.CLOSED,
    "REVOK": TradeState.CLOSED,
    "REVOKED": TradeState.CLOSED,
    "PAYERROR": TradeState.FAILED,
}
REFUND_STATES: dict[str, RefundState] = {
    "SUCCESS": RefundState.SUCCEEDED,
    "FAIL": RefundState.FAILED,
    "PROCESSING": RefundState.PROCESSING,
    "NOTSURE": RefundState.PROCESSING,
    "CHANGE": RefundState.ABNORMAL,
}
# err_code values inherited from WeChat v2 (unverified against Wallyt's own spec).
NOT_FOUND_ERR_CODES = frozenset({"ORDERNOTEXIST", "ORDER_NOT_EXIST", "TRADE_NOT_EXIST", "REFUNDNOTEXIST"})
PAID_ERR_CODES = frozenset({"ORDERPAID", "ORDER_PAID", "TRADE_HAS_SUCCESS"})
RETRYABLE_ERR_CODES = frozenset({"SYSTEMERROR", "SYSTEM_ERROR", "BIZERR_NEED_RETRY"})
_TAG_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class WallytXmlError(ValueError):
    """The XML is not something we accept (too big, DTD/entities, malformed, not flat)."""


@dataclass(frozen=True)
class WallytConfig:
    api_url: str
    mch_id: str
    secret_key: str = field(repr=False)  # MD5 only
    notify_url: str
    mini_appid: str
    sign_type: str = "MD5"  # MD5 | RSA_1_256
    private_key_pem: str = field(default="", repr=False)  # RSA_1_256: our merchant private key (signs requests)
    platform_public_key_pem: str = ""  # RSA_1_256: the platform's public key (verifies answers and notifies)
    timeout: tuple[float, float] = (5, 15)
    bill_url: str = ""  # the SwiftPass family's bill host (pay.bill.merchant), not api_url


# --------------------------------------------------------------------------- XML and signing


def xml_loads(body: bytes) -> dict[str, str]:
    """Parse a flat ``<xml><k>v</k>...</xml>`` document from an untrusted source."""
    if len(body) > MAX_XML_BYTES:
        raise WallytXmlError("XML body too large")
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (defusedxml.DefusedXmlException, ParseError, ValueError) as exc:
        raise WallytXmlError(f"XML rejected: {type(exc).__name__}") from exc
    if root.tag != "xml" or root.attrib:
        raise WallytXmlError("root element must be a bare <xml>")
    params: dict[str, str] = {}
    for child in root:
        if not isinstance(child.tag, str) or len(child) or child.attrib or child.tag in params:
            raise WallytXmlError("XML must be flat, without attributes or repeated fields")
        if (child.tail or "").strip():
            raise WallytXmlError("text outside fields")
        params[child.tag] = child.text or ""
    if (root.text or "").strip():
        raise WallytXmlError("text outside fields")
    return params


def xml_dumps(params: Mapping[str, str]) -> bytes:
    parts = []
    for key, value in params.items():
        if not _TAG_RE.fullmatch(key):
            raise ValueError(f"bad field name {key!r}")
        parts.append(f"<{key}>{escape(value)}</{key}>")
    return ("<xml>" + "".join(parts) + "</xml>").encode("utf-8")


def md5_sign(params: Mapping[str, str], *, key: str) -> str:
    """PROTOCOLS C.3: sorted non-empty params except ``sign``, ``k=v&...&key=KEY``, MD5, upper hex."""
    pairs = sorted((k, v) for k, v in params.items() if k != "sign" and v not in ("", None))
    text = "&".join(f"{k}={v}" for k, v in pairs) + f"&key={key}"
    return hashlib.md5(text.encode("utf-8")).hexdigest().upper()  # noqa: S324 - the protocol mandates MD5


def md5_verify(params: Mapping[str, str], *, key: str) -> bool:
    given = params.get("sign", "")
    if not given or not given.isascii():
        return False
    return hmac.compare_digest(md5_sign(params, key=key), given.upper())


def rsa_string_to_sign(params: Mapping[str, str]) -> str:
    """PROTOCOLS F.6 (zacat/swiftpass-sdk ``SignUtils``): sorted non-empty params except ``sign``, ``k=v``
    joined with ``&``, no URL-encoding and no ``&key=``; ``sign_type`` included."""
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign" and v not in ("", None))


def rsa_sign(params: Mapping[str, str], *, private_key: rsa.RSAPrivateKey) -> str:
    """RSA_1_256: base64 of SHA256withRSA (PKCS#1 v1.5) over the UTF-8 string to sign."""
    signature = private_key.sign(rsa_string_to_sign(params).encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def rsa_verify(params: Mapping[str, str], *, public_key: rsa.RSAPublicKey) -> bool:
    try:
        signature = base64.b64decode(params.get("sign", ""), validate=True)
        public_key.verify(signature, rsa_string_to_sign(params).encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


class _Signer:
    """Signs our requests and verifies the platform's messages with the configured ``sign_type`` only: a
    message signed (or claiming to be signed) another way is refused, never verified the weaker way."""

    def __init__(self, config: WallytConfig) -> None:
        self.sign_type = config.sign_type
        if self.sign_type == "MD5":
            if not config.secret_key:
                raise ChannelNotConfigured("The Wallyt secret key is empty.", details={"setting": "WALLYT_SECRET_KEY"})
            self._key = config.secret_key
            return
        try:
            self._private_key = load_private_key(config.private_key_pem)
            self._public_key = load_public_key(config.platform_public_key_pem)
        except ValueError as exc:
            raise ChannelNotConfigured(
                f"Wallyt {self.sign_type} needs our private key and the platform public key: {exc}",
                details={"setting": "WALLYT_PRIVATE_KEY_PATH / WALLYT_PLATFORM_PUBLIC_KEY_PATH"},
            ) from exc

    def sign(self, params: Mapping[str, str]) -> str:
        if self.sign_type == "MD5":
            return md5_sign(params, key=self._key)
        return rsa_sign(params, private_key=self._private_key)

    def verify(self, params: Mapping[str, str]) -> bool:
        if params.get("sign_type") != self.sign_type:  # absent or another way: never verified the weaker way
            return False
        if self.sign_type == "MD5":
            return md5_verify(params, key=self._key)
        return rsa_verify(params, public_key=self._public_key)


# --------------------------------------------------------------------------- helpers


def _cst_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValidationFailed("expires_at must be timezone-aware")
    return moment.astimezone(CST).strftime(WALLYT_TIME_FORMAT)


def _parse_cst(value: str | None) -> datetime | None:
    try:
        return datetime.strptime(value or "", WALLYT_TIME_FORMAT).replace(tzinfo=CST)
    except ValueError:
        return None


def _fen(value: str | None) -> int | None:
    if value is None or not value.isascii() or not value.isdigit():
        return None
    return int(value)


def _rejection(answer: Mapping[str, str]) -> Exception:
    err_code = answer.get("err_code", "") or answer.get("result_code", "")
    message = answer.get("err_msg") or answer.get("message") or err_code
    if err_code in RETRYABLE_ERR_CODES:
        return GatewayUnavailable(f"Wallyt: {message}", details={"gateway_code": err_code})
    if err_code in NOT_FOUND_ERR_CODES:
        return TradeNotFound(message, gateway_code=err_code)
    if err_code in PAID_ERR_CODES:
        return TradeAlreadyPaid(message, gateway_code=err_code)
    return GatewayRejected(message, gateway_code=err_code)


def trade_status_from(data: Mapping[str, str], *, payment_no: str, source: Message = Message.QUERY) -> TradeStatus:
    gateway_state = data.get("trade_state", "")
    state = TRADE_STATES.get(gateway_state)
    if state is None:
        raise ValueError(f"unexpected trade_state {gateway_state!r}")
    return TradeStatus(
        payment_no=data.get("out_trade_no") or payment_no,
        state=state,
        gateway="wallyt",
        source=source,
        amount_fen=_fen(data.get("total_fee")),
        gateway_trade_no=data.get("transaction_id") or None,
        paid_at=_parse_cst(data.get("time_end")),
        merchant_id=data.get("mch_id") or None,
        sub_app_id=data.get("sub_appid") or None,
        currency=data.get("fee_type") or None,
        gateway_state=gateway_state,
        raw=dict(data),
    )


def _refund_index(data: Mapping[str, str], refund_no: str) -> int:
    """Where our refund is in an answer's indexed list; a one-refund answer about another refund is read
    as it is (the trust checks then refuse it for ``out_refund_no``)."""
    count = _fen(data.get("refund_count")) or 0
    for index in range(min(count, 50)):
        if data.get(f"out_refund_no_{index}") == refund_no:
            return index
    if count == 1:
        return 0
    raise ValueError(f"refund {refund_no!r} not in the answer")


def refund_status_from(data: Mapping[str, str], *, refund_no: str, payment_no: str) -> RefundStatus:
    index = _refund_index(data, refund_no)
    gateway_state = data.get(f"refund_status_{index}", "")
    state = REFUND_STATES.get(gateway_state)
    if state is None:
        raise ValueError(f"unexpected refund_status {gateway_state!r}")
    return RefundStatus(
        refund_no=data.get(f"out_refund_no_{index}") or refund_no,
        state=state,
        gateway="wallyt",
        source=Message.QUERY,
        payment_no=data.get("out_trade_no") or None,
        amount_fen=_fen(data.get(f"refund_fee_{index}")),
        total_fen=_fen(data.get("total_fee")),
        gateway_refund_id=data.get(f"refund_id_{index}") or None,
        succeeded_at=_parse_cst(data.get(f"refund_time_{index}")) if state is RefundState.SUCCEEDED else None,
        merchant_id=data.get("mch_id") or None,
        gateway_state=gateway_state,
        raw=dict(data),
    )


# --------------------------------------------------------------------------- the gateway


class WallytGateway:
    name = "wallyt"

    checks = CHECKS

    def __init__(self, config: WallytConfig, *, session: requests.Session | None = None) -> None:
        if config.sign_type not in SUPPORTED_SIGN_TYPES:
            raise ChannelNotConfigured(
                f"Wallyt sign_type {config.sign_type!r} is not supported ({', '.join(sorted(SUPPORTED_SIGN_TYPES))}).",
                details={"setting": "WALLYT_SIGN_TYPE"},
            )
        self.config = config
        self._signer = _Signer(config)
        self._http = ProcessSession(config.api_url, session=session)  # pooled, per process (transport)

    def identity(self) -> Identity:
        """The ids every answer and notification must carry (compared by ``CHECKS``)."""
        return Identity(merchant_id=self.config.mch_id, sub_app_id=self.config.mini_appid)

    def _post(self, service: str, fields: Mapping[str, str]) -> dict[str, str]:
        """One call: sign, POST, parse, check ``status``, the signature and ``result_code`` (the words read
        from the answer are checked against ``CHECKS`` by the services)."""
        request = {
            "service": service,
            "version": "2.0",
            "charset": "UTF-8",
            "sign_type": self.config.sign_type,
            "mch_id": self.config.mch_id,
            "nonce_str": secrets.token_hex(16),
            **{k: v for k, v in fields.items() if v not in ("", None)},
        }
        request["sign"] = self._signer.sign(request)
        answer = self._exchange(xml_dumps(request))
        if answer.get("status") != "0":  # transport-level error: unsigned, not retried blindly as a "no"
            message = answer.get("message") or "no message"
            raise GatewayUnavailable(
                f"Wallyt status {answer.get('status')!r}: {message}", details={"status": answer.get("status", "")}
            )
        if not self._signer.verify(answer):
            raise GatewayUnavailable("Wallyt answer signature does not verify (or is not signed the configured way).")
        if answer.get("result_code") != "0":
            raise _rejection(answer)
        return answer

    def _exchange(self, payload: bytes) -> dict[str, str]:
        try:
            response = self._http.get().post(
                self.config.api_url,
                data=payload,
                headers={"Content-Type": "text/xml; charset=utf-8"},
                timeout=self.config.timeout,
                stream=True,
            )
            body = _read_capped(response)
        except requests.Timeout as exc:
            raise GatewayUnavailable("Wallyt timed out.") from exc
        except requests.RequestException as exc:
            raise GatewayUnavailable("Wallyt could not be reached.") from exc
        except WallytXmlError as exc:
            raise GatewayUnavailable(str(exc)) from exc
        if response.status_code != 200:
            raise GatewayUnavailable(f"Wallyt answered HTTP {response.status_code}.")
        try:
            return xml_loads(body)
        except WallytXmlError as exc:
            raise GatewayUnavailable(f"Wallyt answer is not acceptable XML: {exc}") from exc

    # -- protocol

    def create(self, request: PrepayRequest) -> PrepayResult:
        if request.product != "jsapi":
            raise ValidationFailed(f"Wallyt supports only product 'jsapi', not {request.product!r}")
        if not request.openid:
            raise ValidationFailed("Wallyt mini-program pay needs the payer's openid")
        answer = self._post(
            "pay.weixin.jspay",
            {
                "out_trade_no": request.payment_no,
                "body": request.description,
                "total_fee": str(request.amount_fen),
                "mch_create_ip": request.client_ip or "127.0.0.1",
                "notify_url": request.notify_url or self.config.notify_url,
                "sub_openid": request.openid,
                "sub_appid": self.config.mini_appid,
                "is_raw": "1",
                "is_minipg": "1",
                "time_expire": _cst_text(request.expires_at),
            },
        )
        return PrepayResult(pay_params=_pay_params(answer.get("pay_info")), raw=answer)

    def query(self, payment_no: str) -> TradeStatus:
        answer = self._post("unified.trade.query", {"out_trade_no": payment_no})
        return _parsed(lambda: trade_status_from(answer, payment_no=payment_no, source=Message.QUERY))

    def close(self, payment_no: str) -> None:
        try:
            self._post("unified.trade.close", {"out_trade_no": payment_no})
        except (TradeAlreadyPaid, TradeNotFound):
            raise
        except GatewayRejected as exc:
            status = self.query(payment_no)  # the err_code vocabulary is unverified: ask what happened
            if status.state is TradeState.SUCCEEDED:
                raise TradeAlreadyPaid("Wallyt trade is paid.", gateway_code=exc.gateway_code) from exc
            if status.state is not TradeState.CLOSED:
                raise

    def refund(self, request: RefundRequest) -> RefundStatus:
        answer = self._post(
            "unified.trade.refund",
            {
                "out_trade_no": request.payment_no,
                "out_refund_no": request.refund_no,
                "total_fee": str(request.total_fen),
                "refund_fee": str(request.refund_fen),
                "op_user_id": self.config.mch_id,
            },
        )
        return RefundStatus(
            refund_no=answer.get("out_refund_no") or request.refund_no,
            state=RefundState.PROCESSING,
            gateway="wallyt",
            source=Message.ANSWER,
            payment_no=answer.get("out_trade_no") or None,
            amount_fen=_fen(answer.get("refund_fee")),
            total_fen=_fen(answer.get("total_fee")),
            gateway_refund_id=answer.get("refund_id") or None,
            merchant_id=answer.get("mch_id") or None,
            gateway_state="ACCEPTED",
            raw=answer,
        )

    def query_refund(self, refund_no: str, *, payment_no: str) -> RefundStatus:
        """Raises ``RefundNotFound`` when Wallyt does not know the refund (``REFUNDNOTEXIST``, or an answer
        that lists the trade's refunds without it)."""
        try:
            answer = self._post("unified.trade.refundquery", {"out_refund_no": refund_no, "out_trade_no": payment_no})
        except TradeNotFound as exc:
            raise RefundNotFound(exc.message, gateway_code=exc.gateway_code) from exc
        try:
            _refund_index(answer, refund_no)
        except ValueError as exc:
            raise RefundNotFound(str(exc), gateway_code="REFUNDNOTEXIST") from exc
        return _parsed(lambda: refund_status_from(answer, refund_no=refund_no, payment_no=payment_no))

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        try:
            params = xml_loads(body)
        except WallytXmlError as exc:
            raise NotificationInvalid(f"notification XML rejected: {exc}") from exc
        if not self._signer.verify(params):
            raise SignatureInvalid(
                "Wallyt notification signature does not verify (or is not signed the configured way)"
            )
        if params.get("status") != "0" or params.get("result_code") != "0":
            raise NotificationInvalid("notification status/result_code is not 0")
        payment_no = params.get("out_trade_no", "")
        if not payment_no:
            raise NotificationInvalid("notification lacks out_trade_no")
        paid = params.get("pay_result") == "0"
        trade = TradeStatus(
            payment_no=payment_no,
            state=TradeState.SUCCEEDED if paid else TradeState.FAILED,
            gateway="wallyt",
            source=Message.NOTIFY,
            amount_fen=_fen(params.get("total_fee")),
            gateway_trade_no=params.get("transaction_id") or None,
            paid_at=_parse_cst(params.get("time_end")) if paid else None,
            merchant_id=params.get("mch_id") or None,
            sub_app_id=params.get("sub_appid") or None,
            currency=params.get("fee_type") or None,
            gateway_state=f"pay_result={params.get('pay_result', '')}",
            raw=params,
        )
        event_type = params.get("trade_type") or "pay_result"
        return Notification(event_id=_event_id(params, paid=paid), event_type=event_type, trade=trade)

    def notification_reply(self, *, ok: bool, message: str = "") -> NotificationReply:
        return NotificationReply(status=200, content_type="text/plain", body=b"success" if ok else b"fail")

    def bill(self, bill_date: date) -> Bill:
        """The day's ``ALL`` bill (``pay.bill.merchant``, PROTOCOLS F.4): a signed XML request to
        ``bill_url``, answered with backticked CSV text (parsed by ``parse_wallyt_bill``) or, on an
        error, with the XML reply format (``status`` / ``message``, [unconfirmed]). Raises
        ``ChannelNotConfigured`` without a bill URL and ``GatewayUnavailable`` for anything else."""
        if not self.config.bill_url:
            raise ChannelNotConfigured("WALLYT_BILL_URL is not set: the Wallyt bill cannot be fetched.")
        request = {
            "service": "pay.bill.merchant",
            "version": "1.0",
            "charset": "UTF-8",
            "sign_type": self.config.sign_type,
            "mch_id": self.config.mch_id,
            "bill_date": bill_date.strftime("%Y%m%d"),
            "bill_type": "ALL",
            "nonce_str": secrets.token_hex(16),
        }
        request["sign"] = self._signer.sign(request)
        try:
            response = self._http.get().post(
                self.config.bill_url,
                data=xml_dumps(request),
                headers={"Content-Type": "text/xml; charset=utf-8"},
                timeout=(self.config.timeout[0], 60),
            )
        except requests.RequestException as exc:
            raise GatewayUnavailable("The Wallyt bill could not be downloaded.") from exc
        if response.status_code != 200:
            raise GatewayUnavailable(f"The Wallyt bill download answered HTTP {response.status_code}.")
        body = response.content
        if body.lstrip().startswith(b"<xml"):
            try:
                answer = xml_loads(body)
            except WallytXmlError as exc:
                raise GatewayUnavailable(f"Wallyt bill answer is not acceptable XML: {exc}") from exc
            raise GatewayUnavailable(
                f"Wallyt bill of {bill_date}: status {answer.get('status', '?')}: {answer.get('message', '')}",
                details={"bill_date": str(bill_date), "status": answer.get("status", "")},
            )
        try:
            return parse_wallyt_bill(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise GatewayUnavailable(
                f"Wallyt bill of {bill_date} cannot be parsed: {exc}", details={"bill_date": str(bill_date)}
            ) from exc


def _read_capped(response: requests.Response) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_content(chunk_size=8192):
        size += len(chunk)
        if size > MAX_XML_BYTES:
            response.close()
            raise WallytXmlError("Wallyt answer too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _pay_params(pay_info: str | None) -> dict[str, str]:
    try:
        data = json.loads(pay_info or "")
    except ValueError as exc:
        raise GatewayUnavailable("Wallyt pay_info is not JSON.") from exc
    wanted = ("appId", "timeStamp", "nonceStr", "package", "signType", "paySign")
    if not isinstance(data, dict) or any(not data.get(k) for k in wanted):
        raise GatewayUnavailable("Wallyt pay_info lacks wx.requestPayment fields.")
    return {k: str(data[k]) for k in wanted}


def _event_id(params: Mapping[str, str], *, paid: bool) -> str:
    base = params.get("transaction_id") or f"{params.get('out_trade_no', '')}:{params.get('time_end', '')}"
    return base if paid else f"{base}:pay_result={params.get('pay_result', '')}"


def _parsed(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except ValueError as exc:
        raise GatewayUnavailable(f"Wallyt answer is malformed: {exc}") from exc
