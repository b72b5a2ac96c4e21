"""RSA keys in every form a gateway console hands them out, read into one canonical PEM.

Alipay's console (and its key tool) gives keys as PKCS#1 or PKCS#8, with or without the
``-----BEGIN ...-----`` lines, wrapped at 64 columns or as one long line; a key pasted into an
environment variable also comes as one line with its headers, or with literal ``\\n``. Its
"Alipay public key" is an X.509 SubjectPublicKeyInfo; in certificate mode it is a certificate.
``key_pem(text)`` accepts all of these and returns a PKCS#8 private key or an SPKI public key in
PEM, which every SDK here (python-alipay-sdk's Cryptodome, wechatpayv3, cryptography) loads.

Errors are ``KeyFormatError`` with a sentence saying what the text is and what was expected.
Sources: Alipay open platform "生成密钥" docs (PKCS#1 for Java-less tools, PKCS#8 for Java);
PROTOCOLS B.1 (the SDK's ``RSA.importKey``).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

Kind = Literal["private", "public"]
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


class KeyFormatError(ValueError):
    """The text is not an RSA key of the kind asked for; the message says what it is."""


def _der_from(text: str) -> tuple[str | None, bytes]:
    """(PEM label or None, DER bytes) of a key in any of the accepted forms."""
    cleaned = text.replace("\r", "").replace("\\n", "\n").strip().strip("\"'").strip()
    block = _PEM_BLOCK.search(cleaned)
    label, body = (block.group(1), block.group(2)) if block else (None, cleaned)
    if "ENCRYPTED" in (label or "") or "Proc-Type: 4,ENCRYPTED" in body:
        raise KeyFormatError("the key is encrypted with a passphrase: export it without one")
    compact = re.sub(r"\s+", "", body)
    if not compact:
        raise KeyFormatError("the key is empty")
    if not _BASE64.fullmatch(compact):
        raise KeyFormatError("the key is neither PEM nor base64 text (a DER file? a path instead of the key?)")
    try:
        return label, base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except binascii.Error as exc:
        raise KeyFormatError("the key's base64 text is damaged (truncated when copied?)") from exc


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """An RSA private key from PKCS#1 or PKCS#8, PEM or bare base64 (one line or wrapped)."""
    label, der = _der_from(text)
    if (label and "PUBLIC" in label) or label == "CERTIFICATE":
        what = "a certificate" if label == "CERTIFICATE" else "a public key"
        raise KeyFormatError(f"this is {what} where the private key is expected")
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError) as exc:
        if _is_public(der):
            raise KeyFormatError("this is a public key where the private key is expected") from exc
        raise KeyFormatError("this is not an RSA private key in PKCS#1 or PKCS#8 form") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFormatError(f"this is a {type(key).__name__}, not an RSA key")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """An RSA public key from SPKI or PKCS#1, PEM or bare base64, or the key of an X.509 certificate."""
    label, der = _der_from(text)
    if label and "PRIVATE" in label:
        raise KeyFormatError("this is a private key where the public key is expected")
    try:
        key = x509.load_der_x509_certificate(der).public_key() if label == "CERTIFICATE" else _public_from(der)
    except ValueError as exc:
        if _is_private(der):
            raise KeyFormatError("this is a private key where the public key is expected") from exc
        raise KeyFormatError("this is not an RSA public key (SubjectPublicKeyInfo or PKCS#1) or certificate") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFormatError(f"this is a {type(key).__name__}, not an RSA key")
    return key


def _public_from(der: bytes):
    try:
        return serialization.load_der_public_key(der)
    except ValueError:
        return x509.load_der_x509_certificate(der).public_key()  # a certificate pasted without its header


def _is_public(der: bytes) -> bool:
    try:
        _public_from(der)
    except ValueError:
        return False
    return True


def _is_private(der: bytes) -> bool:
    try:
        serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError):
        return False
    return True


def private_key_pem(text: str) -> str:
    return (
        load_private_key(text)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )


def public_key_pem(text: str) -> str:
    return (
        load_public_key(text)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def key_pem(text: str) -> str:
    """The canonical PEM of a private or public RSA key given in any console form (see the module).

    The kind is the text's own: its PEM label, or what its DER parses as.
    """
    label, der = _der_from(text)
    if (label and "PRIVATE" in label) or (label is None and _is_private(der)):
        return private_key_pem(text)
    return public_key_pem(text)


def setting_key_pem(text: str, *, gateway: str, setting: str) -> str:
    """``key_pem`` for a key given in a setting: ``ChannelNotConfigured`` names the setting and the problem."""
    from core.errors import ChannelNotConfigured

    try:
        return key_pem(text)
    except KeyFormatError as exc:
        raise ChannelNotConfigured(
            f"{gateway}: {setting} cannot be read: {exc}.", details={"gateway": gateway, "setting": setting}
        ) from exc
