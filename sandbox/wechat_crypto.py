"""Pure WeChat Pay API v3 crypto helpers (no server state).

Importable by tests and benchmarks to build signed + encrypted notifications exactly as the
sandbox (and WeChat) sends them, to sign responses, and to sign/verify merchant requests.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import string
import time
import uuid
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
_AUTH_PAIR = re.compile(r'([A-Za-z_]+)="([^"]*)"')
_NONCE_ALPHABET = string.ascii_letters + string.digits


def dumps(obj: Any) -> bytes:
    """WeChat's wire JSON: compact, UTF-8, Chinese unescaped."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def rsa_sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(public_key: rsa.RSAPublicKey, message: bytes, signature_b64: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature_b64, validate=True), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def rsa_oaep_decrypt(private_key: rsa.RSAPrivateKey, ciphertext_b64: str) -> str | None:
    """A sensitive field the merchant encrypted for the platform (RSA-OAEP, SHA-1: wpv3 ``utils.rsa_encrypt``,
    PROTOCOLS F.2); None when it does not decrypt."""
    try:
        plain = private_key.decrypt(
            base64.b64decode(ciphertext_b64, validate=True),
            padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None),  # noqa: S303
        )
        return plain.decode("utf-8")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return None


def random_nonce(length: int = 32) -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


# ----------------------------------------------------------------------------- requests


def parse_authorization(header: str | None) -> dict[str, str] | None:
    """Parse `WECHATPAY2-SHA256-RSA2048 k="v",...` (fields in any order)."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    if scheme != SIGNATURE_TYPE:
        return None
    fields = dict(_AUTH_PAIR.findall(rest))
    if not all(k in fields for k in ("mchid", "nonce_str", "signature", "timestamp", "serial_no")):
        return None
    return fields


def request_message(method: str, path_with_query: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{method}\n{path_with_query}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def verify_request(
    public_key: rsa.RSAPublicKey, method: str, path_with_query: str, body: bytes, fields: dict[str, str]
) -> bool:
    msg = request_message(method, path_with_query, fields["timestamp"], fields["nonce_str"], body)
    return rsa_verify(public_key, msg, fields["signature"])


def build_authorization(
    private_key: rsa.RSAPrivateKey, *, mchid: str, serial_no: str, method: str, path_with_query: str, body: bytes = b""
) -> str:
    """Authorization header a merchant would send (same order as the official SDKs)."""
    ts = str(int(time.time()))
    nonce = uuid.uuid4().hex.upper()
    sig = rsa_sign(private_key, request_message(method, path_with_query, ts, nonce, body))
    return (
        f'{SIGNATURE_TYPE} mchid="{mchid}",nonce_str="{nonce}",timestamp="{ts}",'
        f'serial_no="{serial_no}",signature="{sig}"'
    )


# ----------------------------------------------------------------------------- responses


def signed_headers(
    private_key: rsa.RSAPrivateKey,
    serial: str,
    body: bytes,
    *,
    timestamp: str | None = None,
    nonce: str | None = None,
    corrupt: bool = False,
) -> dict[str, str]:
    """Wechatpay-* headers over `ts\\nnonce\\nbody\\n` (used for responses AND notifications)."""
    ts = timestamp or str(int(time.time()))
    nc = nonce or uuid.uuid4().hex.upper()
    signature = rsa_sign(private_key, f"{ts}\n{nc}\n".encode() + body + b"\n")
    if corrupt:
        raw = bytearray(base64.b64decode(signature))
        raw[len(raw) // 2] ^= 0xFF
        signature = base64.b64encode(bytes(raw)).decode()
    return {
        "Wechatpay-Timestamp": ts,
        "Wechatpay-Nonce": nc,
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature": signature,
        "Wechatpay-Signature-Type": SIGNATURE_TYPE,
    }


def verify_signed(public_key: rsa.RSAPublicKey, headers: dict[str, str], body: bytes) -> bool:
    h = {k.lower(): v for k, v in headers.items()}
    if h.get("wechatpay-signature-type") != SIGNATURE_TYPE:
        return False
    msg = f"{h.get('wechatpay-timestamp', '')}\n{h.get('wechatpay-nonce', '')}\n".encode() + body + b"\n"
    return rsa_verify(public_key, msg, h.get("wechatpay-signature", ""))


# ----------------------------------------------------------------------------- AES-GCM


def aes_gcm_encrypt(apiv3_key: str, plaintext: str, associated_data: str, nonce: str) -> str:
    ct = AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), plaintext.encode(), associated_data.encode())
    return base64.b64encode(ct).decode()


def aes_gcm_decrypt(apiv3_key: str, ciphertext: str, associated_data: str, nonce: str) -> str | None:
    try:
        pt = AESGCM(apiv3_key.encode()).decrypt(nonce.encode(), base64.b64decode(ciphertext), associated_data.encode())
    except (InvalidTag, ValueError):
        return None
    return pt.decode()


def encrypt_resource(apiv3_key: str, plaintext: dict[str, Any], original_type: str) -> dict[str, str]:
    nonce = random_nonce(12)
    return {
        "original_type": original_type,
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": aes_gcm_encrypt(apiv3_key, dumps(plaintext).decode(), original_type, nonce),
        "associated_data": original_type,
        "nonce": nonce,
    }


# ----------------------------------------------------------------------------- notifications

EVENT_SUMMARIES = {
    "TRANSACTION.SUCCESS": "支付成功",
    "REFUND.SUCCESS": "退款成功",
    "REFUND.ABNORMAL": "退款异常",
    "REFUND.CLOSED": "退款关闭",
}


def rfc3339_now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%dT%H:%M:%S+08:00")


def build_notification_body(
    *,
    apiv3_key: str,
    event_type: str,
    plaintext: dict[str, Any],
    original_type: str,
    notify_id: str | None = None,
    create_time: str | None = None,
) -> bytes:
    envelope = {
        "id": notify_id or str(uuid.uuid4()),
        "create_time": create_time or rfc3339_now(),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": EVENT_SUMMARIES.get(event_type, event_type),
        "resource": encrypt_resource(apiv3_key, plaintext, original_type),
    }
    return dumps(envelope)


def build_transaction_notification(
    transaction: dict[str, Any],
    *,
    apiv3_key: str,
    private_key: rsa.RSAPrivateKey,
    serial: str,
    notify_id: str | None = None,
    bad_signature: bool = False,
) -> tuple[dict[str, str], bytes]:
    """Signed TRANSACTION.SUCCESS notification for a query-shaped transaction dict.

    `serial` is the platform cert serial (upper hex, certificate mode) or the public key id.
    Returns (headers, body bytes) ready to POST.
    """
    body = build_notification_body(
        apiv3_key=apiv3_key,
        event_type="TRANSACTION.SUCCESS",
        plaintext=transaction,
        original_type="transaction",
        notify_id=notify_id,
    )
    headers = {"Content-Type": "application/json"}
    headers.update(signed_headers(private_key, serial, body, corrupt=bad_signature))
    return headers, body


def build_refund_notification(
    refund: dict[str, Any],
    *,
    apiv3_key: str,
    private_key: rsa.RSAPrivateKey,
    serial: str,
    notify_id: str | None = None,
    bad_signature: bool = False,
) -> tuple[dict[str, str], bytes]:
    """Signed REFUND.<refund_status> notification for a refund-notification-shaped dict (A.7)."""
    event = f"REFUND.{refund['refund_status']}"
    body = build_notification_body(
        apiv3_key=apiv3_key, event_type=event, plaintext=refund, original_type="refund", notify_id=notify_id
    )
    headers = {"Content-Type": "application/json"}
    headers.update(signed_headers(private_key, serial, body, corrupt=bad_signature))
    return headers, body
