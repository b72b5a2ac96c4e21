"""RSA keys as the gateways' consoles hand them out: PEM or one line of base64, PKCS#8 or PKCS#1.

Used for keys that our own code (not an SDK) signs or verifies with (Wallyt RSA_1_256); the SDKs load
theirs themselves. Raises ``ValueError`` naming what could not be read.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    load_der_private_key,
    load_der_public_key,
    load_pem_private_key,
    load_pem_public_key,
)


def _der(text: str) -> bytes:
    body = "".join(line.strip() for line in text.strip().splitlines() if not line.startswith("-----"))
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the key is neither PEM nor base64") from exc


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (PKCS#8 or PKCS#1) or bare base64 DER (either)."""
    if not text or not text.strip():
        raise ValueError("the private key is empty")
    try:
        key = load_pem_private_key(text.encode(), password=None) if "-----BEGIN" in text else None
    except (ValueError, TypeError):
        key = None
    if key is None:
        try:
            key = load_der_private_key(_der(text), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError("the private key cannot be read (PKCS#8 or PKCS#1 RSA expected)") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the private key is not an RSA key")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """An RSA public key from PEM (SubjectPublicKeyInfo or PKCS#1) or bare base64 DER (either)."""
    if not text or not text.strip():
        raise ValueError("the public key is empty")
    try:
        key = load_pem_public_key(text.encode()) if "-----BEGIN" in text else None
    except (ValueError, TypeError):
        key = None
    if key is None:
        try:
            key = load_der_public_key(_der(text))
        except (ValueError, TypeError) as exc:
            raise ValueError(
                "the public key cannot be read (X.509 SubjectPublicKeyInfo or PKCS#1 RSA expected)"
            ) from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the public key is not an RSA key")
    return key
