"""The registry reads the real sandbox's generated data dir (its fixed layout) and the adapters then work."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from core.errors import TradeNotFound
from payments.gateways.registry import get_gateway, reset_gateways


@pytest.fixture
def sandbox_settings(settings: Any, sandbox: Any) -> Iterator[Any]:
    settings.SANDBOX_ENABLED = True
    settings.SANDBOX_DATA_DIR = sandbox.data_dir
    for name in (
        "WECHAT_APPID", "WECHAT_PAY_MCHID", "WECHAT_PAY_SERIAL_NO", "WECHAT_PAY_API_V3_KEY",
        "WECHAT_PAY_PRIVATE_KEY_PATH", "WECHAT_PAY_PUBLIC_KEY_PATH", "WECHAT_PAY_PUBLIC_KEY_ID",
        "WECHAT_PAY_PLATFORM_CERT_DIR", "ALIPAY_APP_ID", "ALIPAY_PRIVATE_KEY", "ALIPAY_PRIVATE_KEY_PATH",
        "ALIPAY_PUBLIC_KEY", "ALIPAY_PUBLIC_KEY_PATH", "WALLYT_MCH_ID", "WALLYT_SECRET_KEY", "WECHAT_MINI_APPID",
    ):  # fmt: skip
        setattr(settings, name, "")
    settings.WECHAT_PAY_API_BASE = sandbox.base_url
    settings.ALIPAY_GATEWAY = sandbox.alipay_gateway
    settings.WALLYT_API_URL = sandbox.wallyt_url
    settings.WALLYT_SIGN_TYPE = "MD5"
    for gateway in ("WECHAT_PAY", "ALIPAY", "WALLYT"):
        setattr(settings, f"{gateway}_NOTIFY_URL", f"https://merchant.example/notify/{gateway.lower()}/")
    reset_gateways()
    yield settings
    reset_gateways()


@pytest.mark.parametrize("name", ["wechat", "alipay", "wallyt"])
def test_gateways_from_the_sandbox_data_dir_talk_to_the_sandbox(sandbox_settings: Any, name: str) -> None:
    gateway = get_gateway(name)

    with pytest.raises(TradeNotFound):
        gateway.query(f"RG{secrets.token_hex(8)}")
