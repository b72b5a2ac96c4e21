"""Key material for the sandbox gateways.

`ensure_keys(data_dir)` creates, once, every key, certificate and identifier the three fake
gateways need, and returns their paths plus the non-secret identifiers. Writes are atomic
(temp file + rename), private material is mode 0600, and a file lock makes two processes
racing on a fresh directory safe (the loser finds the winner's files and reuses them).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import secrets
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / "var" / "sandbox"

FILES = {
    "wechat_merchant_private_key": "wechat/merchant_private_key.pem",
    "wechat_merchant_cert": "wechat/merchant_cert.pem",
    "wechat_platform_private_key": "wechat/platform_private_key.pem",
    "wechat_platform_cert": "wechat/platform_cert.pem",
    "wechat_platform_public_key": "wechat/platform_public_key.pem",
    "wechat_apiv3_key": "wechat/apiv3_key",
    "alipay_app_private_key": "alipay/app_private_key.pem",
    "alipay_app_public_key": "alipay/app_public_key.pem",
    "alipay_alipay_private_key": "alipay/alipay_private_key.pem",
    "alipay_alipay_public_key": "alipay/alipay_public_key.pem",
    "wallyt_secret_key": "wallyt/secret_key",
    "wallyt_merchant_private_key": "wallyt/merchant_private_key.pem",
    "wallyt_merchant_public_key": "wallyt/merchant_public_key.pem",
    "wallyt_platform_private_key": "wallyt/platform_private_key.pem",
    "wallyt_platform_public_key": "wallyt/platform_public_key.pem",
    "credentials": "credentials.json",
}


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _new_rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _self_signed(key: rsa.RSAPrivateKey, common_name: str, org: str, years: int) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    # Serial: < 160 bits (20 DER octets); bit 158 set so the upper-hex form is always 40 chars.
    serial = secrets.randbits(158) | (1 << 158)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _digits(n: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(n))


def _generate(root: Path) -> None:
    """Generate every missing file (each file is independent; existing ones are kept)."""
    p = {k: root / v for k, v in FILES.items()}

    if not (p["wechat_merchant_private_key"].exists() and p["wechat_merchant_cert"].exists()):
        key = _new_rsa()
        cert = _self_signed(key, "sandbox merchant", "WeChat Pay sandbox merchant", 5)
        _write_atomic(p["wechat_merchant_private_key"], _private_pem(key), 0o600)
        _write_atomic(p["wechat_merchant_cert"], cert.public_bytes(serialization.Encoding.PEM), 0o644)
    if not all(
        p[k].exists() for k in ("wechat_platform_private_key", "wechat_platform_cert", "wechat_platform_public_key")
    ):
        key = _new_rsa()
        cert = _self_signed(key, "Tenpay.com Root CA sandbox", "Tenpay.com sandbox", 5)
        _write_atomic(p["wechat_platform_private_key"], _private_pem(key), 0o600)
        _write_atomic(p["wechat_platform_cert"], cert.public_bytes(serialization.Encoding.PEM), 0o644)
        _write_atomic(p["wechat_platform_public_key"], _public_pem(key), 0o644)
    if not p["wechat_apiv3_key"].exists():
        alphabet = string.ascii_letters + string.digits
        _write_atomic(p["wechat_apiv3_key"], "".join(secrets.choice(alphabet) for _ in range(32)).encode(), 0o600)
    if not (p["alipay_app_private_key"].exists() and p["alipay_app_public_key"].exists()):
        key = _new_rsa()
        _write_atomic(p["alipay_app_private_key"], _private_pem(key), 0o600)
        _write_atomic(p["alipay_app_public_key"], _public_pem(key), 0o644)
    if not (p["alipay_alipay_private_key"].exists() and p["alipay_alipay_public_key"].exists()):
        key = _new_rsa()
        _write_atomic(p["alipay_alipay_private_key"], _private_pem(key), 0o600)
        _write_atomic(p["alipay_alipay_public_key"], _public_pem(key), 0o644)
    if not p["wallyt_secret_key"].exists():
        _write_atomic(p["wallyt_secret_key"], secrets.token_hex(16).encode(), 0o600)
    for side in ("merchant", "platform"):  # RSA_1_256: the merchant signs requests, the platform answers
        if not (p[f"wallyt_{side}_private_key"].exists() and p[f"wallyt_{side}_public_key"].exists()):
            key = _new_rsa()
            _write_atomic(p[f"wallyt_{side}_private_key"], _private_pem(key), 0o600)
            _write_atomic(p[f"wallyt_{side}_public_key"], _public_pem(key), 0o644)
    if not p["credentials"].exists():
        merchant = x509.load_pem_x509_certificate(p["wechat_merchant_cert"].read_bytes())
        platform = x509.load_pem_x509_certificate(p["wechat_platform_cert"].read_bytes())
        creds = {
            "wechat": {
                "appid": "wx" + secrets.token_hex(8),
                "mini_appid": "wx" + secrets.token_hex(8),
                "mchid": "19" + _digits(8),
                "merchant_serial_no": format(merchant.serial_number, "X"),
                "platform_serial_no": format(platform.serial_number, "X"),
                "public_key_id": "PUB_KEY_ID_0" + _digits(27),
            },
            "alipay": {"app_id": "2021" + _digits(12), "seller_id": "2088" + _digits(12)},
            "wallyt": {"mch_id": "1275" + _digits(8)},
        }
        _write_atomic(p["credentials"], (json.dumps(creds, indent=2) + "\n").encode(), 0o644)
    creds = json.loads(p["credentials"].read_text())
    if not creds["wechat"].get("payscore_service_id"):  # Pay Score's service_id: 32 digits (PROTOCOLS F.3)
        creds["wechat"]["payscore_service_id"] = "2002" + _digits(28)
        _write_atomic(p["credentials"], (json.dumps(creds, indent=2) + "\n").encode(), 0o644)
    if not creds["alipay"].get("seller_id"):  # a data dir from before the seller id was generated
        creds["alipay"]["seller_id"] = "2088" + creds["alipay"]["app_id"][-12:]
        _write_atomic(p["credentials"], (json.dumps(creds, indent=2) + "\n").encode(), 0o644)


def ensure_keys(data_dir: Path | str | None = None) -> dict[str, Any]:
    """Create (once) and describe the sandbox key material in `data_dir`.

    Returns {"data_dir": Path, "paths": {name: Path}, "credentials": {...}}.
    """
    root = Path(data_dir) if data_dir else DEFAULT_DATA_DIR
    root.mkdir(parents=True, exist_ok=True)
    paths = {k: root / v for k, v in FILES.items()}
    complete = all(path.exists() for path in paths.values()) and all(
        f'"{name}"' in paths["credentials"].read_text() for name in ("seller_id", "payscore_service_id")
    )
    if not complete:
        with open(root / ".keys.lock", "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                _generate(root)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    credentials = json.loads(paths["credentials"].read_text())
    return {"data_dir": root, "paths": paths, "credentials": credentials}


@dataclass(frozen=True)
class Keys:
    """Loaded key objects used by the running server."""

    credentials: dict[str, Any]
    merchant_cert: x509.Certificate
    merchant_public_key: rsa.RSAPublicKey
    merchant_private_key: rsa.RSAPrivateKey
    platform_private_key: rsa.RSAPrivateKey
    platform_cert: x509.Certificate
    platform_cert_pem: str
    platform_serial_no: str
    public_key_id: str
    apiv3_key: str
    alipay_app_public_key: rsa.RSAPublicKey
    alipay_app_private_key: rsa.RSAPrivateKey
    alipay_private_key: rsa.RSAPrivateKey
    alipay_public_key: rsa.RSAPublicKey
    wallyt_key: str
    wallyt_merchant_public_key: rsa.RSAPublicKey
    wallyt_platform_private_key: rsa.RSAPrivateKey


def load_keys(data_dir: Path | str | None = None) -> Keys:
    info = ensure_keys(data_dir)
    p = info["paths"]
    creds = info["credentials"]

    def priv(name: str) -> rsa.RSAPrivateKey:
        key = serialization.load_pem_private_key(p[name].read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key

    def pub(name: str) -> rsa.RSAPublicKey:
        key = serialization.load_pem_public_key(p[name].read_bytes())
        assert isinstance(key, rsa.RSAPublicKey)
        return key

    merchant_cert = x509.load_pem_x509_certificate(p["wechat_merchant_cert"].read_bytes())
    platform_cert_pem = p["wechat_platform_cert"].read_text()
    platform_cert = x509.load_pem_x509_certificate(platform_cert_pem.encode())
    merchant_pub = merchant_cert.public_key()
    assert isinstance(merchant_pub, rsa.RSAPublicKey)
    return Keys(
        credentials=creds,
        merchant_cert=merchant_cert,
        merchant_public_key=merchant_pub,
        merchant_private_key=priv("wechat_merchant_private_key"),
        platform_private_key=priv("wechat_platform_private_key"),
        platform_cert=platform_cert,
        platform_cert_pem=platform_cert_pem,
        platform_serial_no=format(platform_cert.serial_number, "X"),
        public_key_id=creds["wechat"]["public_key_id"],
        apiv3_key=p["wechat_apiv3_key"].read_text().strip(),
        alipay_app_public_key=pub("alipay_app_public_key"),
        alipay_app_private_key=priv("alipay_app_private_key"),
        alipay_private_key=priv("alipay_alipay_private_key"),
        alipay_public_key=pub("alipay_alipay_public_key"),
        wallyt_key=p["wallyt_secret_key"].read_text().strip(),
        wallyt_merchant_public_key=pub("wallyt_merchant_public_key"),
        wallyt_platform_private_key=priv("wallyt_platform_private_key"),
    )
