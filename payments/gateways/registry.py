"""``get_gateway("wechat" | "alipay" | "wallyt")``: one adapter per process, built from settings.

Nothing is read at import time. Settings are read, and key files opened, when a gateway is
first asked for. With ``SANDBOX_ENABLED`` every empty setting is filled from the local sandbox's
generated credentials in ``SANDBOX_DATA_DIR`` (fixed layout, see ``_sandbox_values``). Base URLs
and notify URLs always come from settings (the settings module fills them in sandbox mode).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings

from core.errors import ChannelNotConfigured
from payments.gateways.alipay import PRODUCTION_GATEWAY, AlipayConfig, AlipayGateway
from payments.gateways.base import Gateway
from payments.gateways.keys import setting_key_pem
from payments.gateways.wallyt import WallytConfig, WallytGateway
from payments.gateways.wechat import PRODUCTION_API_BASE, WeChatConfig, WeChatGateway

WECHAT_APIV3_KEY_LENGTH = 32
DEFAULT_NOTIFY_MAX_SKEW_SECONDS = 300

_gateways: dict[str, Gateway] = {}
_lock = threading.Lock()


def get_gateway(name: str) -> Gateway:
    """The process-wide adapter for ``name``; raises ``ChannelNotConfigured`` naming missing settings."""
    gateway = _gateways.get(name)
    if gateway is not None:
        return gateway
    builder = _BUILDERS.get(name)
    if builder is None:
        raise ChannelNotConfigured(f"Unknown payment gateway {name!r}.", details={"gateway": name})
    with _lock:
        if name not in _gateways:
            _gateways[name] = builder()
        return _gateways[name]


def reset_gateways() -> None:
    """Forget the built adapters (tests, or after settings change)."""
    with _lock:
        _gateways.clear()


# --------------------------------------------------------------------------- settings access


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class _Settings:
    """The settings one gateway needs, with sandbox defaults filled into the empty ones."""

    def __init__(self, gateway: str, names: tuple[str, ...]) -> None:
        self.gateway = gateway
        self.values: dict[str, Any] = {name: getattr(settings, name, None) for name in names}
        if getattr(settings, "SANDBOX_ENABLED", False):
            for name, value in sandbox_values(gateway, self.values).items():
                if _is_empty(self.values.get(name)):
                    self.values[name] = value

    def get(self, name: str, default: Any = None) -> Any:
        value = self.values.get(name)
        return default if _is_empty(value) else value

    def require(self, *names: str) -> None:
        _raise_missing(self.gateway, [name for name in names if _is_empty(self.values.get(name))])

    def read_file(self, name: str) -> str:
        path = self.get(name)
        try:
            return Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ChannelNotConfigured(
                f"{self.gateway}: the file named by {name} cannot be read.",
                details={"gateway": self.gateway, "setting": name, "path": str(path)},
            ) from exc


def sandbox_values(gateway: str, current: dict[str, Any]) -> dict[str, Any]:
    """Defaults from the sandbox's generated credentials (layout fixed by the sandbox)."""
    data_dir = Path(getattr(settings, "SANDBOX_DATA_DIR", "") or "")
    try:
        credentials = json.loads((data_dir / "credentials.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ChannelNotConfigured(
            "SANDBOX_ENABLED is set but SANDBOX_DATA_DIR/credentials.json cannot be read.",
            details={"gateway": gateway, "path": str(data_dir / "credentials.json")},
        ) from exc
    wechat, alipay, wallyt = (credentials.get(k) or {} for k in ("wechat", "alipay", "wallyt"))
    if gateway == "wechat":
        values = {
            "WECHAT_APPID": wechat.get("appid"),
            "WECHAT_PAY_MCHID": wechat.get("mchid"),
            "WECHAT_PAY_SERIAL_NO": wechat.get("merchant_serial_no"),
            "WECHAT_PAY_PRIVATE_KEY_PATH": str(data_dir / "wechat" / "merchant_private_key.pem"),
            "WECHAT_PAY_API_V3_KEY": _read_optional(data_dir / "wechat" / "apiv3_key"),
            "WECHAT_PAYSCORE_SERVICE_ID": wechat.get("payscore_service_id"),
        }
        if _is_empty(current.get("WECHAT_PAY_PLATFORM_CERT_DIR")):
            values["WECHAT_PAY_PUBLIC_KEY_PATH"] = str(data_dir / "wechat" / "platform_public_key.pem")
            values["WECHAT_PAY_PUBLIC_KEY_ID"] = wechat.get("public_key_id")
        return values
    if gateway == "alipay":
        values = {"ALIPAY_APP_ID": alipay.get("app_id"), "ALIPAY_SELLER_ID": alipay.get("seller_id")}
        if _is_empty(current.get("ALIPAY_PRIVATE_KEY")):
            values["ALIPAY_PRIVATE_KEY_PATH"] = str(data_dir / "alipay" / "app_private_key.pem")
        if _is_empty(current.get("ALIPAY_PUBLIC_KEY")):
            values["ALIPAY_PUBLIC_KEY_PATH"] = str(data_dir / "alipay" / "alipay_public_key.pem")
        return values
    return {
        "WALLYT_MCH_ID": wallyt.get("mch_id"),
        "WALLYT_SECRET_KEY": _read_optional(data_dir / "wallyt" / "secret_key"),
        "WALLYT_PRIVATE_KEY_PATH": str(data_dir / "wallyt" / "merchant_private_key.pem"),
        "WALLYT_PLATFORM_PUBLIC_KEY_PATH": str(data_dir / "wallyt" / "platform_public_key.pem"),
        "WECHAT_MINI_APPID": wechat.get("mini_appid"),
    }


def _read_optional(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None  # reported as a missing setting


# --------------------------------------------------------------------------- builders


_WECHAT_NAMES = (
    "WECHAT_APPID",
    "WECHAT_PAY_MCHID",
    "WECHAT_PAY_SERIAL_NO",
    "WECHAT_PAY_API_V3_KEY",
    "WECHAT_PAY_PRIVATE_KEY_PATH",
    "WECHAT_PAY_NOTIFY_URL",
    "WECHAT_PAY_PUBLIC_KEY_PATH",
    "WECHAT_PAY_PUBLIC_KEY_ID",
    "WECHAT_PAY_PLATFORM_CERT_DIR",
    "WECHAT_PAY_API_BASE",
    "WECHAT_PAY_NOTIFY_MAX_SKEW_SECONDS",
    "WECHAT_PAYSCORE_SERVICE_ID",
)
_ALIPAY_NAMES = (
    "ALIPAY_APP_ID",
    "ALIPAY_SELLER_ID",
    "ALIPAY_PRIVATE_KEY",
    "ALIPAY_PRIVATE_KEY_PATH",
    "ALIPAY_PUBLIC_KEY",
    "ALIPAY_PUBLIC_KEY_PATH",
    "ALIPAY_GATEWAY",
    "ALIPAY_NOTIFY_URL",
    "ALIPAY_RETURN_URL",
)
_WALLYT_NAMES = (
    "WALLYT_API_URL",
    "WALLYT_BILL_URL",
    "WALLYT_MCH_ID",
    "WALLYT_SECRET_KEY",
    "WALLYT_SIGN_TYPE",
    "WALLYT_PRIVATE_KEY_PATH",
    "WALLYT_PLATFORM_PUBLIC_KEY_PATH",
    "WALLYT_NOTIFY_URL",
    "WECHAT_MINI_APPID",
)


def _build_wechat() -> WeChatGateway:
    s = _Settings("wechat", _WECHAT_NAMES)
    required = (
        "WECHAT_APPID",
        "WECHAT_PAY_MCHID",
        "WECHAT_PAY_SERIAL_NO",
        "WECHAT_PAY_API_V3_KEY",
        "WECHAT_PAY_PRIVATE_KEY_PATH",
        "WECHAT_PAY_NOTIFY_URL",
    )
    missing = [name for name in required if _is_empty(s.values[name])]
    key_names = ("WECHAT_PAY_PUBLIC_KEY_PATH", "WECHAT_PAY_PUBLIC_KEY_ID")
    public_key_mode = any(not _is_empty(s.values[name]) for name in key_names)
    if public_key_mode:
        missing += [name for name in key_names if _is_empty(s.values[name])]
    elif _is_empty(s.values["WECHAT_PAY_PLATFORM_CERT_DIR"]):
        missing.append("WECHAT_PAY_PUBLIC_KEY_PATH + WECHAT_PAY_PUBLIC_KEY_ID (or WECHAT_PAY_PLATFORM_CERT_DIR)")
    _raise_missing("wechat", missing)
    apiv3_key = str(s.get("WECHAT_PAY_API_V3_KEY")).strip()
    if len(apiv3_key.encode("utf-8")) != WECHAT_APIV3_KEY_LENGTH:
        raise ChannelNotConfigured(
            "WECHAT_PAY_API_V3_KEY must be 32 characters.",
            details={"gateway": "wechat", "setting": "WECHAT_PAY_API_V3_KEY"},
        )
    config = WeChatConfig(
        appid=s.get("WECHAT_APPID"),
        mchid=str(s.get("WECHAT_PAY_MCHID")),
        merchant_serial_no=s.get("WECHAT_PAY_SERIAL_NO"),
        private_key_pem=s.read_file("WECHAT_PAY_PRIVATE_KEY_PATH"),
        apiv3_key=apiv3_key,
        notify_url=s.get("WECHAT_PAY_NOTIFY_URL"),
        api_base=s.get("WECHAT_PAY_API_BASE", PRODUCTION_API_BASE),
        public_key_pem=s.read_file("WECHAT_PAY_PUBLIC_KEY_PATH") if public_key_mode else None,
        public_key_id=s.get("WECHAT_PAY_PUBLIC_KEY_ID") if public_key_mode else None,
        # both set: WeChat's key switch, when a merchant receives signatures under either (PROTOCOLS F.1)
        platform_cert_dir=str(s.get("WECHAT_PAY_PLATFORM_CERT_DIR")) if s.get("WECHAT_PAY_PLATFORM_CERT_DIR") else None,
        notify_max_skew_seconds=int(s.get("WECHAT_PAY_NOTIFY_MAX_SKEW_SECONDS", DEFAULT_NOTIFY_MAX_SKEW_SECONDS)),
        payscore_service_id=str(s.get("WECHAT_PAYSCORE_SERVICE_ID", "")),
    )
    return WeChatGateway(config)


def _key_text(s: _Settings, *, inline: str, path: str) -> str:
    text = str(s.values[inline]) if not _is_empty(s.values.get(inline)) else s.read_file(path)
    return setting_key_pem(text, gateway=s.gateway, setting=inline)  # every console form, as one PEM


def _raise_missing(gateway: str, missing: list[str]) -> None:
    if missing:
        raise ChannelNotConfigured(
            f"{gateway} is not configured; missing settings: {', '.join(missing)}.",
            details={"gateway": gateway, "missing": missing},
        )


def _build_alipay() -> AlipayGateway:
    s = _Settings("alipay", _ALIPAY_NAMES)
    missing = [n for n in ("ALIPAY_APP_ID", "ALIPAY_SELLER_ID", "ALIPAY_NOTIFY_URL") if _is_empty(s.values[n])]
    for inline, path in (
        ("ALIPAY_PRIVATE_KEY", "ALIPAY_PRIVATE_KEY_PATH"),
        ("ALIPAY_PUBLIC_KEY", "ALIPAY_PUBLIC_KEY_PATH"),
    ):
        if _is_empty(s.values[inline]) and _is_empty(s.values[path]):
            missing.append(f"{inline} (or {path})")
    _raise_missing("alipay", missing)
    config = AlipayConfig(
        app_id=str(s.get("ALIPAY_APP_ID")),
        seller_id=str(s.get("ALIPAY_SELLER_ID")).strip(),
        app_private_key_pem=_key_text(s, inline="ALIPAY_PRIVATE_KEY", path="ALIPAY_PRIVATE_KEY_PATH"),
        alipay_public_key_pem=_key_text(s, inline="ALIPAY_PUBLIC_KEY", path="ALIPAY_PUBLIC_KEY_PATH"),
        gateway_url=s.get("ALIPAY_GATEWAY", PRODUCTION_GATEWAY),
        notify_url=s.get("ALIPAY_NOTIFY_URL"),
        return_url=s.get("ALIPAY_RETURN_URL"),
    )
    return AlipayGateway(config)


def _build_wallyt() -> WallytGateway:
    s = _Settings("wallyt", _WALLYT_NAMES)
    sign_type = str(s.get("WALLYT_SIGN_TYPE", "MD5")).strip().upper()
    keys = (
        ("WALLYT_SECRET_KEY",) if sign_type == "MD5" else ("WALLYT_PRIVATE_KEY_PATH", "WALLYT_PLATFORM_PUBLIC_KEY_PATH")
    )
    s.require("WALLYT_API_URL", "WALLYT_MCH_ID", *keys, "WALLYT_NOTIFY_URL", "WECHAT_MINI_APPID")
    rsa = sign_type != "MD5"
    config = WallytConfig(
        api_url=s.get("WALLYT_API_URL"),
        mch_id=str(s.get("WALLYT_MCH_ID")),
        secret_key=str(s.get("WALLYT_SECRET_KEY") or "").strip() if not rsa else "",
        notify_url=s.get("WALLYT_NOTIFY_URL"),
        mini_appid=s.get("WECHAT_MINI_APPID"),
        sign_type=sign_type,
        private_key_pem=s.read_file("WALLYT_PRIVATE_KEY_PATH") if rsa else "",
        platform_public_key_pem=s.read_file("WALLYT_PLATFORM_PUBLIC_KEY_PATH") if rsa else "",
        bill_url=s.get("WALLYT_BILL_URL", ""),
    )
    return WallytGateway(config)


_BUILDERS: dict[str, Callable[[], Gateway]] = {
    "wechat": _build_wechat,
    "alipay": _build_alipay,
    "wallyt": _build_wallyt,
}
GATEWAY_NAMES = frozenset(_BUILDERS)
