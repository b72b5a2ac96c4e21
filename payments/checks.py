"""Go-live doctor: Django system checks of every configured payment channel.

They run with ``manage.py check`` (and ``check --deploy``, which the compose ``migrate`` service
runs before anything starts), so a wrong key or URL stops a deployment with a sentence instead of
failing the first real payment. A channel is checked when any of its credential settings is set
(the sandbox's generated credentials are not). Each message names the setting; its hint says
the fix. The causes are the gateways' own troubleshooting lists (seed 002 "Signature
verification failing", seed 003 9.1 "签名验证失败": wrong certificate serial, key format,
RSA vs RSA2, clock skew; 9.2: notify URL not reachable over HTTPS).

``manage.py gateway_probe`` goes one step further: it makes a harmless signed call.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from django.conf import settings
from django.core import checks
from django.http.request import validate_host
from django.urls import Resolver404, resolve
from django.utils import timezone

from core.errors import ChannelNotConfigured
from payments.gateways.keys import KeyFormatError, load_private_key, load_public_key
from payments.gateways.registry import sandbox_values

TAG = "gateways"
APIV3_KEY_BYTES = 32  # AES-256-GCM key (PROTOCOLS A.8)
RSA2_MIN_BITS = 2048  # Alipay RSA2 / WeChat Pay keys are 2048-bit; "RSA" (1024-bit, SHA1) is refused
CERT_EXPIRY_WARNING = timedelta(days=30)
CLOCK_FLOOR = datetime(2026, 1, 1, tzinfo=UTC)  # before this code existed: the clock is wrong
CLOCK_SKEW_WARNING = timedelta(seconds=5)
CLOCK_SKEW_ERROR = timedelta(seconds=60)  # gateways refuse requests whose timestamp is minutes off
WALLYT_SIGN_TYPES = ("MD5", "RSA_1_256")

WECHAT = (
    "WECHAT_PAY_MCHID",
    "WECHAT_PAY_SERIAL_NO",
    "WECHAT_PAY_API_V3_KEY",
    "WECHAT_PAY_PRIVATE_KEY_PATH",
    "WECHAT_PAY_CERT_PATH",
    "WECHAT_PAY_PUBLIC_KEY_PATH",
    "WECHAT_PAY_PUBLIC_KEY_ID",
    "WECHAT_PAY_PLATFORM_CERT_DIR",
)
ALIPAY = (
    "ALIPAY_APP_ID",
    "ALIPAY_PRIVATE_KEY",
    "ALIPAY_PRIVATE_KEY_PATH",
    "ALIPAY_PUBLIC_KEY",
    "ALIPAY_PUBLIC_KEY_PATH",
)
WALLYT = ("WALLYT_MCH_ID", "WALLYT_SECRET_KEY", "WALLYT_PRIVATE_KEY_PATH", "WALLYT_PLATFORM_PUBLIC_KEY_PATH")


def _setting(name: str) -> str:
    value = getattr(settings, name, "")
    return "" if value is None else str(value).strip()


def _value(name: str) -> str:
    """The value the gateway will use: the setting, or with ``SANDBOX_ENABLED`` the sandbox's generated
    one when the setting is empty (as ``payments.gateways.registry`` fills it), so the doctor judges what
    will run, not the half an operator typed."""
    value = _setting(name)
    if value or not getattr(settings, "SANDBOX_ENABLED", False):
        return value
    for gateway, names in (("wechat", WECHAT), ("alipay", ALIPAY), ("wallyt", WALLYT)):
        current = {n: getattr(settings, n, None) for n in names}
        try:
            filled = sandbox_values(gateway, current)
        except ChannelNotConfigured:  # no sandbox credentials yet: the setting really is empty
            return ""
        if filled.get(name):
            return str(filled[name]).strip()
    return ""


def configured(names: tuple[str, ...]) -> bool:
    """Someone set one of these (the sandbox's own credentials are not checked)."""
    return any(_setting(name) for name in names)


def _missing(names: list[str], channel: str) -> list[checks.CheckMessage]:
    empty = [name for name in names if not _value(name)]
    if not empty:
        return []
    return [
        checks.Error(
            f"{channel} is half configured: {', '.join(empty)} {'is' if len(empty) == 1 else 'are'} empty.",
            hint=f"Set {', '.join(empty)} (README, Going live), or unset the other {channel} settings.",
            id="payments.E001",
        )
    ]


class _Found(Exception):
    def __init__(self, message: checks.CheckMessage) -> None:
        self.message = message


def _read(setting: str, what: str) -> str:
    path = _value(setting)
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise _Found(
            checks.Error(
                f"{setting} names {path!r}, which cannot be read ({problem}).",
                hint=f"Point {setting} at {what}, readable by this user (mode 600 and owned by it is best).",
                id="payments.E002",
            )
        ) from exc


def _key(setting: str, text: str, load: Callable[[str], Any], what: str) -> Any:
    try:
        key = load(text)
    except KeyFormatError as exc:
        raise _Found(
            checks.Error(f"{setting} is not usable: {exc}.", hint=f"{setting} must be {what}.", id="payments.E003")
        ) from exc
    if key.key_size < RSA2_MIN_BITS:
        raise _Found(
            checks.Error(
                f"{setting} is a {key.key_size}-bit RSA key; RSA2 (SHA256withRSA) needs at least {RSA2_MIN_BITS} bits.",
                hint=f"Generate a {RSA2_MIN_BITS}-bit key pair (RSA2, not RSA) and upload its public key.",
                id="payments.E015",
            )
        )
    return key


def _collect(*steps: Callable[[], list[checks.CheckMessage]]) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    for step in steps:
        try:
            messages += step()
        except _Found as found:
            messages.append(found.message)
    return messages


# --------------------------------------------------------------------------- URLs


def _public_host_problem(host: str) -> str | None:
    if host in ("localhost",) or host.endswith(".localhost") or host.endswith(".local"):
        return f"{host} is a local name"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return None if address.is_global else f"{host} is not a public address"


def check_url(setting: str, *, route: tuple[str, dict[str, str]] | None = None) -> list[checks.CheckMessage]:
    """Absolute; HTTPS and public when live (production without the sandbox); routed to our own view."""
    url = _value(setting)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [
            checks.Error(
                f"{setting} is {url!r}: not an absolute http(s) URL.",
                hint=f"Set {setting} to a full URL such as https://pay.example.com{_route_path(route)}.",
                id="payments.E010",
            )
        ]
    messages = []
    live = settings.PRODUCTION and not settings.SANDBOX_ENABLED
    if live and parts.scheme != "https":
        messages.append(
            checks.Error(
                f"{setting} is {url!r}: production needs HTTPS (gateways refuse to call, or be called, over HTTP).",
                hint=f"Use https:// in {setting}, with a TLS-terminating proxy in front of web.",
                id="payments.E011",
            )
        )
    if live and (problem := _public_host_problem(parts.hostname)):
        messages.append(
            checks.Error(
                f"{setting} is {url!r}: {problem}, which the gateway cannot reach.",
                hint=f"Use this system's public host name in {setting} (usually PUBLIC_BASE_URL's).",
                id="payments.E011",
            )
        )
    if route is not None:
        messages += _check_route(setting, url, parts, route)
    return messages


def _route_path(route: tuple[str, dict[str, str]] | None) -> str:
    if route is None:
        return "/"
    from django.urls import reverse

    return reverse(route[0], kwargs=route[1])


def _check_route(setting: str, url: str, parts, route: tuple[str, dict[str, str]]) -> list[checks.CheckMessage]:
    name, kwargs = route
    try:
        match = resolve(parts.path or "/")
    except Resolver404:
        match = None
    if match is None or match.url_name != name or any(match.kwargs.get(k) != v for k, v in kwargs.items()):
        return [
            checks.Error(
                f"{setting} is {url!r}, whose path is not this system's endpoint for it.",
                hint=f"The path must be {_route_path(route)} (the gateway posts there).",
                id="payments.E012",
            )
        ]
    if not validate_host(parts.hostname, settings.ALLOWED_HOSTS):
        return [
            checks.Error(
                f"{setting} is {url!r}, but {parts.hostname} is not in DJANGO_ALLOWED_HOSTS: "
                "every call to it would be answered 400 Bad Request.",
                hint=f"Add {parts.hostname} to DJANGO_ALLOWED_HOSTS.",
                id="payments.E013",
            )
        ]
    return []


def _api_base(setting: str) -> list[checks.CheckMessage]:
    return check_url(setting) if _value(setting) else []


# --------------------------------------------------------------------------- WeChat Pay


@checks.register(TAG)
def check_wechat(app_configs=None, **kwargs: Any) -> list[checks.CheckMessage]:
    if not configured(WECHAT):
        return []
    public_key_mode = bool(_value("WECHAT_PAY_PUBLIC_KEY_PATH") or _value("WECHAT_PAY_PUBLIC_KEY_ID"))
    required = ["WECHAT_APPID", "WECHAT_PAY_MCHID", "WECHAT_PAY_SERIAL_NO", "WECHAT_PAY_API_V3_KEY"]
    required += ["WECHAT_PAY_PRIVATE_KEY_PATH", "WECHAT_PAY_NOTIFY_URL"]
    if public_key_mode or not _value("WECHAT_PAY_PLATFORM_CERT_DIR"):
        required += ["WECHAT_PAY_PUBLIC_KEY_PATH", "WECHAT_PAY_PUBLIC_KEY_ID"]
    missing = _missing(required, "WeChat Pay")
    if missing:
        return missing
    return _collect(
        _wechat_ids,
        _wechat_apiv3_key,
        _wechat_merchant_key,
        _wechat_platform_public_key if public_key_mode else _wechat_platform_certificates,
        lambda: check_url("WECHAT_PAY_NOTIFY_URL", route=("payment-notify", {"gateway_name": "wechat"})),
        lambda: _api_base("WECHAT_PAY_API_BASE"),
    )


def _wechat_ids() -> list[checks.CheckMessage]:
    messages = []
    if not _value("WECHAT_PAY_MCHID").isdigit():
        messages.append(
            checks.Error(
                "WECHAT_PAY_MCHID must be the merchant id: digits only.",
                hint="Copy 商户号 from the merchant platform (Account center, account info).",
                id="payments.E017",
            )
        )
    serial = _value("WECHAT_PAY_SERIAL_NO")
    if not _is_hex(serial):
        messages.append(
            checks.Error(
                f"WECHAT_PAY_SERIAL_NO is {serial!r}: a certificate serial is hexadecimal.",
                hint="Copy the serial of your merchant API certificate (API安全, 证书序列号), "
                "or read it with `openssl x509 -noout -serial -in apiclient_cert.pem`.",
                id="payments.E018",
            )
        )
    return messages


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789ABCDEFabcdef" for c in text)


def _wechat_apiv3_key() -> list[checks.CheckMessage]:
    size = len(_value("WECHAT_PAY_API_V3_KEY").encode("utf-8"))
    if size == APIV3_KEY_BYTES:
        return []
    return [
        checks.Error(
            f"WECHAT_PAY_API_V3_KEY is {size} bytes; the APIv3 key is exactly {APIV3_KEY_BYTES} "
            "(it decrypts every notification).",
            hint="Copy the 32-character APIv3 key you set under API安全 → APIv3密钥 (not the v2 API key).",
            id="payments.E004",
        )
    ]


def _wechat_merchant_key() -> list[checks.CheckMessage]:
    private = _key(
        "WECHAT_PAY_PRIVATE_KEY_PATH",
        _read("WECHAT_PAY_PRIVATE_KEY_PATH", "apiclient_key.pem from the merchant API certificate download"),
        load_private_key,
        "apiclient_key.pem, the merchant API private key",
    )
    if not _value("WECHAT_PAY_CERT_PATH"):
        return [
            checks.Info(
                "WECHAT_PAY_CERT_PATH is not set: the private key cannot be checked against the certificate of "
                "serial WECHAT_PAY_SERIAL_NO.",
                hint="Set WECHAT_PAY_CERT_PATH to apiclient_cert.pem (downloaded with the key) to check them.",
                id="payments.I019",
            )
        ]
    cert = _certificate("WECHAT_PAY_CERT_PATH", "apiclient_cert.pem, the merchant API certificate")
    messages = _expiry("WECHAT_PAY_CERT_PATH", cert)
    serial, configured_serial = format(cert.serial_number, "X"), _value("WECHAT_PAY_SERIAL_NO")
    if _is_hex(configured_serial) and int(configured_serial, 16) != cert.serial_number:
        messages.append(
            checks.Error(
                f"WECHAT_PAY_SERIAL_NO is {configured_serial}, but the certificate in WECHAT_PAY_CERT_PATH has "
                f"serial {serial}: WeChat Pay refuses the signature (SIGN_ERROR, serial_no not match).",
                hint=f"Set WECHAT_PAY_SERIAL_NO={serial}, or point WECHAT_PAY_CERT_PATH at the certificate "
                "of the configured serial.",
                id="payments.E005",
            )
        )
    if cert.public_key().public_numbers() != private.public_key().public_numbers():
        messages.append(
            checks.Error(
                "WECHAT_PAY_PRIVATE_KEY_PATH is not the private key of the certificate in WECHAT_PAY_CERT_PATH: "
                "WeChat Pay would refuse every signature.",
                hint="Use the apiclient_key.pem downloaded together with this apiclient_cert.pem.",
                id="payments.E006",
            )
        )
    return messages


def _certificate(setting: str, what: str) -> x509.Certificate:
    text = _read(setting, what)
    try:
        return x509.load_pem_x509_certificate(text.encode())
    except ValueError as exc:
        raise _Found(
            checks.Error(f"{setting} is not a PEM certificate.", hint=f"{setting} must be {what}.", id="payments.E003")
        ) from exc


def _expiry(setting: str, cert: x509.Certificate) -> list[checks.CheckMessage]:
    now = timezone.now()
    if cert.not_valid_after_utc <= now:
        return [
            checks.Error(
                f"The certificate in {setting} expired on {cert.not_valid_after_utc:%Y-%m-%d}.",
                hint="Renew it in the merchant platform (API安全 → 申请证书) and install the new key and certificate.",
                id="payments.E007",
            )
        ]
    if cert.not_valid_after_utc - now < CERT_EXPIRY_WARNING:
        return [
            checks.Warning(
                f"The certificate in {setting} expires on {cert.not_valid_after_utc:%Y-%m-%d}.",
                hint="Renew it in the merchant platform now; the old one stops working on that day.",
                id="payments.W007",
            )
        ]
    return []


def _wechat_platform_public_key() -> list[checks.CheckMessage]:
    _key(
        "WECHAT_PAY_PUBLIC_KEY_PATH",
        _read("WECHAT_PAY_PUBLIC_KEY_PATH", "the WeChat Pay public key (pub_key.pem) from API安全 → 微信支付公钥"),
        load_public_key,
        "the WeChat Pay public key (pub_key.pem)",
    )
    key_id = _value("WECHAT_PAY_PUBLIC_KEY_ID")
    if key_id.startswith("PUB_KEY_ID_") and key_id[len("PUB_KEY_ID_") :].isdigit():
        return []
    return [
        checks.Error(
            f"WECHAT_PAY_PUBLIC_KEY_ID is {key_id!r}; the id of a WeChat Pay public key is PUB_KEY_ID_ and digits.",
            hint="Copy the 公钥ID shown next to the WeChat Pay public key (not a certificate serial).",
            id="payments.E008",
        )
    ]


def _wechat_platform_certificates() -> list[checks.CheckMessage]:
    folder = Path(_value("WECHAT_PAY_PLATFORM_CERT_DIR"))
    valid = []
    for path in sorted(folder.glob("*.pem")) if folder.is_dir() else []:
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError):
            continue
        if cert.not_valid_after_utc > timezone.now():
            valid.append(cert)
    if valid:
        return []
    return [
        checks.Error(
            f"WECHAT_PAY_PLATFORM_CERT_DIR ({folder}) holds no valid platform certificate (*.pem).",
            hint="Switch to the WeChat Pay public key (WECHAT_PAY_PUBLIC_KEY_PATH and _ID; new merchants must), "
            "or download the platform certificates into that folder.",
            id="payments.E009",
        )
    ]


# --------------------------------------------------------------------------- Alipay


def _alipay_key_text(inline: str, path: str, what: str) -> tuple[str, str]:
    if _value(inline):
        return inline, _value(inline)
    return path, _read(path, what)


@checks.register(TAG)
def check_alipay(app_configs=None, **kwargs: Any) -> list[checks.CheckMessage]:
    if not configured(ALIPAY):
        return []
    missing = _missing(["ALIPAY_APP_ID", "ALIPAY_NOTIFY_URL"], "Alipay")
    for inline, path in (
        ("ALIPAY_PRIVATE_KEY", "ALIPAY_PRIVATE_KEY_PATH"),
        ("ALIPAY_PUBLIC_KEY", "ALIPAY_PUBLIC_KEY_PATH"),
    ):
        if not (_value(inline) or _value(path)):
            missing += _missing([inline], "Alipay")
    if missing:
        return missing
    return _collect(
        _alipay_keys,
        lambda: check_url("ALIPAY_NOTIFY_URL", route=("payment-notify", {"gateway_name": "alipay"})),
        lambda: (
            check_url("ALIPAY_RETURN_URL", route=("payment-return-alipay", {})) if _value("ALIPAY_RETURN_URL") else []
        ),
        lambda: _api_base("ALIPAY_GATEWAY"),
    )


def _alipay_keys() -> list[checks.CheckMessage]:
    private_setting, private_text = _alipay_key_text(
        "ALIPAY_PRIVATE_KEY", "ALIPAY_PRIVATE_KEY_PATH", "the app private key (应用私钥) made with Alipay's key tool"
    )
    public_setting, public_text = _alipay_key_text(
        "ALIPAY_PUBLIC_KEY", "ALIPAY_PUBLIC_KEY_PATH", "the Alipay public key (支付宝公钥) from the console"
    )
    private = _key(private_setting, private_text, load_private_key, "the app private key (应用私钥), RSA2")
    public = _key(
        public_setting, public_text, load_public_key, "the Alipay public key (支付宝公钥), not the app public key"
    )
    return _not_own_key(
        public_setting, private_setting, public, private, "the Alipay public key (支付宝公钥) shown in the console"
    )


def _not_own_key(public_setting: str, private_setting: str, public, private, theirs: str) -> list[checks.CheckMessage]:
    """The gateway's public key must not be our own (a pasted pair): its answers would never verify."""
    if public.public_numbers() != private.public_key().public_numbers():
        return []
    return [
        checks.Error(
            f"{public_setting} is your own public key (it matches {private_setting}): the gateway's answers and "
            "notifications would never verify.",
            hint=f"Use {theirs}.",
            id="payments.E014",
        )
    ]


# --------------------------------------------------------------------------- Wallyt


@checks.register(TAG)
def check_wallyt(app_configs=None, **kwargs: Any) -> list[checks.CheckMessage]:
    if not configured(WALLYT):
        return []
    sign_type = _value("WALLYT_SIGN_TYPE") or "MD5"
    if sign_type not in WALLYT_SIGN_TYPES:
        return [
            checks.Error(
                f"WALLYT_SIGN_TYPE is {sign_type!r}; supported: {', '.join(WALLYT_SIGN_TYPES)}.",
                hint="Use the sign type Wallyt enabled for your merchant id.",
                id="payments.E016",
            )
        ]
    keys = (
        ["WALLYT_SECRET_KEY"] if sign_type == "MD5" else ["WALLYT_PRIVATE_KEY_PATH", "WALLYT_PLATFORM_PUBLIC_KEY_PATH"]
    )
    missing = _missing(["WALLYT_MCH_ID", "WALLYT_NOTIFY_URL", "WECHAT_MINI_APPID", *keys], f"Wallyt ({sign_type})")
    if missing:
        return missing
    return _collect(
        (lambda: []) if sign_type == "MD5" else _wallyt_rsa_keys,
        lambda: check_url("WALLYT_NOTIFY_URL", route=("payment-notify", {"gateway_name": "wallyt"})),
        lambda: _api_base("WALLYT_API_URL"),
    )


def _wallyt_rsa_keys() -> list[checks.CheckMessage]:
    private = _key(
        "WALLYT_PRIVATE_KEY_PATH",
        _read("WALLYT_PRIVATE_KEY_PATH", "your RSA private key for Wallyt"),
        load_private_key,
        "your merchant RSA private key (PKCS#8 or PKCS#1)",
    )
    public = _key(
        "WALLYT_PLATFORM_PUBLIC_KEY_PATH",
        _read("WALLYT_PLATFORM_PUBLIC_KEY_PATH", "Wallyt's platform public key"),
        load_public_key,
        "Wallyt's platform public key",
    )
    return _not_own_key(
        "WALLYT_PLATFORM_PUBLIC_KEY_PATH",
        "WALLYT_PRIVATE_KEY_PATH",
        public,
        private,
        "the platform public key Wallyt gave you",
    )


# --------------------------------------------------------------------------- clock


@checks.register(TAG)
def check_clock(app_configs=None, **kwargs: Any) -> list[checks.CheckMessage]:
    now = timezone.now()
    if now >= CLOCK_FLOOR:
        return []
    return [
        checks.Error(
            f"The server clock says {now:%Y-%m-%d %H:%M} UTC, which is in the past: gateways refuse signed requests "
            "with a wrong timestamp, and notifications would look stale.",
            hint="Synchronise the clock (NTP: `timedatectl set-ntp true` or chrony).",
            id="payments.E020",
        )
    ]


@checks.register(TAG, checks.Tags.database)
def check_clock_against_database(app_configs=None, databases=None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The web host's clock against the database server's (both must agree with the gateways')."""
    if not databases or "default" not in databases:
        return []
    from django.db import DatabaseError, connection

    try:
        with connection.cursor() as cursor:
            before = timezone.now()
            cursor.execute("SELECT clock_timestamp()")  # now() would be the transaction's start
            theirs = cursor.fetchone()[0]
            ours = before + (timezone.now() - before) / 2
    except DatabaseError:
        return []  # the database's own checks report it
    skew = abs(ours - theirs)
    if skew <= CLOCK_SKEW_WARNING:
        return []
    level, code = (checks.Error, "E021") if skew > CLOCK_SKEW_ERROR else (checks.Warning, "W021")
    return [
        level(
            f"This host's clock and the database server's differ by {skew.total_seconds():.0f} s.",
            hint="Synchronise both with NTP; gateways refuse signed requests whose timestamp is off.",
            id=f"payments.{code}",
        )
    ]


def run_gateway_checks(**kwargs: Any) -> list[checks.CheckMessage]:
    """Every check of this module (tests, ``gateway_probe``)."""
    return [*check_wechat(), *check_alipay(), *check_wallyt(), *check_clock(), *check_clock_against_database(**kwargs)]
