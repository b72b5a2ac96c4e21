"""get_gateway(): built from settings + sandbox defaults, cached per process, names what is missing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from core.errors import ChannelNotConfigured
from payments.gateways.alipay import AlipayGateway
from payments.gateways.registry import get_gateway, reset_gateways
from payments.gateways.wallyt import WallytGateway
from payments.gateways.wechat import WeChatGateway

WECHAT = (
    "WECHAT_APPID",
    "WECHAT_PAY_MCHID",
    "WECHAT_PAY_SERIAL_NO",
    "WECHAT_PAY_API_V3_KEY",
    "WECHAT_PAY_PRIVATE_KEY_PATH",
    "WECHAT_PAY_NOTIFY_URL",
    "WECHAT_PAY_PUBLIC_KEY_PATH",
    "WECHAT_PAY_PUBLIC_KEY_ID",
    "WECHAT_PAY_PLATFORM_CERT_DIR",
)
ALIPAY = (
    "ALIPAY_APP_ID",
    "ALIPAY_SELLER_ID",
    "ALIPAY_PRIVATE_KEY",
    "ALIPAY_PRIVATE_KEY_PATH",
    "ALIPAY_PUBLIC_KEY",
    "ALIPAY_PUBLIC_KEY_PATH",
    "ALIPAY_NOTIFY_URL",
)
WALLYT = (
    "WALLYT_MCH_ID",
    "WALLYT_SECRET_KEY",
    "WALLYT_PRIVATE_KEY_PATH",
    "WALLYT_PLATFORM_PUBLIC_KEY_PATH",
    "WALLYT_NOTIFY_URL",
    "WALLYT_API_URL",
    "WECHAT_MINI_APPID",
)
APIV3_KEY = "0123456789abcdef0123456789abcdef"


def _pem_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    public = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


@pytest.fixture(scope="module")
def sandbox_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixed layout the sandbox writes (credentials.json + key files)."""
    root = tmp_path_factory.mktemp("sandbox")
    for sub in ("wechat", "alipay", "wallyt"):
        (root / sub).mkdir()
    credentials = {
        "wechat": {
            "appid": "wxsandboxappid0001",
            "mini_appid": "wxsandboxmini00001",
            "mchid": "1900000001",
            "merchant_serial_no": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
            "platform_serial_no": "7132D72A03E93CDDF8C03BBD1F37EEDF9A3A4CE1",
            "public_key_id": "PUB_KEY_ID_0119000000012025000000000000",
        },
        "alipay": {"app_id": "2021000000000001", "seller_id": "2088000000000001"},
        "wallyt": {"mch_id": "105500000001"},
    }
    (root / "credentials.json").write_text(json.dumps(credentials))
    merchant, _ = _pem_pair()
    _, platform_public = _pem_pair()
    app_private, _ = _pem_pair()
    _, alipay_public = _pem_pair()
    (root / "wechat" / "merchant_private_key.pem").write_text(merchant)
    (root / "wechat" / "platform_public_key.pem").write_text(platform_public)
    (root / "wechat" / "apiv3_key").write_text(APIV3_KEY + "\n")
    (root / "alipay" / "app_private_key.pem").write_text(app_private)
    (root / "alipay" / "alipay_public_key.pem").write_text(alipay_public)
    (root / "wallyt" / "secret_key").write_text("wallyt-sandbox-secret\n")
    return root


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    reset_gateways()
    yield
    reset_gateways()


@pytest.fixture
def empty_settings(settings: Any) -> Any:
    settings.SANDBOX_ENABLED = False
    for name in (*WECHAT, *ALIPAY, *WALLYT):
        setattr(settings, name, "")
    settings.WALLYT_SIGN_TYPE = "MD5"
    return settings


@pytest.mark.parametrize(
    ("gateway", "expected"),
    [
        (
            "wechat",
            [*WECHAT[:6], "WECHAT_PAY_PUBLIC_KEY_PATH + WECHAT_PAY_PUBLIC_KEY_ID (or WECHAT_PAY_PLATFORM_CERT_DIR)"],
        ),
        (
            "alipay",
            [
                "ALIPAY_APP_ID",
                "ALIPAY_SELLER_ID",
                "ALIPAY_NOTIFY_URL",
                "ALIPAY_PRIVATE_KEY (or ALIPAY_PRIVATE_KEY_PATH)",
                "ALIPAY_PUBLIC_KEY (or ALIPAY_PUBLIC_KEY_PATH)",
            ],
        ),
        ("wallyt", ["WALLYT_API_URL", "WALLYT_MCH_ID", "WALLYT_SECRET_KEY", "WALLYT_NOTIFY_URL", "WECHAT_MINI_APPID"]),
    ],
)
def test_missing_settings_are_named(empty_settings: Any, gateway: str, expected: list[str]) -> None:
    with pytest.raises(ChannelNotConfigured) as caught:
        get_gateway(gateway)

    assert caught.value.details["missing"] == expected
    for name in expected:
        assert name in caught.value.message


def test_half_of_public_key_mode_names_the_other_half(empty_settings: Any) -> None:
    for name in WECHAT[:6]:
        setattr(empty_settings, name, APIV3_KEY if name == "WECHAT_PAY_API_V3_KEY" else "x")
    empty_settings.WECHAT_PAY_PUBLIC_KEY_PATH = "/somewhere/platform_public_key.pem"

    with pytest.raises(ChannelNotConfigured) as caught:
        get_gateway("wechat")

    assert caught.value.details["missing"] == ["WECHAT_PAY_PUBLIC_KEY_ID"]


def test_unknown_gateway(empty_settings: Any) -> None:
    with pytest.raises(ChannelNotConfigured):
        get_gateway("paypal")


@pytest.fixture
def sandbox_settings(empty_settings: Any, sandbox_dir: Path) -> Any:
    empty_settings.SANDBOX_ENABLED = True
    empty_settings.SANDBOX_DATA_DIR = sandbox_dir
    empty_settings.WECHAT_PAY_API_BASE = "http://127.0.0.1:8100"
    empty_settings.ALIPAY_GATEWAY = "http://127.0.0.1:8100/alipay/gateway.do"
    empty_settings.WALLYT_API_URL = "http://127.0.0.1:8100/wallyt/pay/gateway"
    empty_settings.WECHAT_PAY_NOTIFY_URL = "https://m.example/notify/wechat/"
    empty_settings.ALIPAY_NOTIFY_URL = "https://m.example/notify/alipay/"
    empty_settings.WALLYT_NOTIFY_URL = "https://m.example/notify/wallyt/"
    empty_settings.WECHAT_PAY_NOTIFY_MAX_SKEW_SECONDS = 120
    return empty_settings


def test_sandbox_fills_every_empty_value(sandbox_settings: Any) -> None:
    wechat, alipay, wallyt = get_gateway("wechat"), get_gateway("alipay"), get_gateway("wallyt")

    assert isinstance(wechat, WeChatGateway) and isinstance(alipay, AlipayGateway) and isinstance(wallyt, WallytGateway)
    assert wechat.config.mchid == "1900000001" and wechat.config.appid == "wxsandboxappid0001"
    assert wechat.config.public_key_mode and wechat.config.public_key_id == "PUB_KEY_ID_0119000000012025000000000000"
    assert wechat.config.apiv3_key == APIV3_KEY and wechat.config.api_base == "http://127.0.0.1:8100"
    assert wechat.config.notify_max_skew_seconds == 120 and wechat.config.platform_cert_dir is None
    assert alipay.config.app_id == "2021000000000001" and alipay.config.seller_id == "2088000000000001"
    assert alipay.config.gateway_url == "http://127.0.0.1:8100/alipay/gateway.do"
    assert wallyt.config.mch_id == "105500000001" and wallyt.config.secret_key == "wallyt-sandbox-secret"
    assert wallyt.config.mini_appid == "wxsandboxmini00001"
    assert wallyt.config.api_url == "http://127.0.0.1:8100/wallyt/pay/gateway"


def test_explicit_settings_win_over_sandbox_values(sandbox_settings: Any) -> None:
    sandbox_settings.WECHAT_PAY_MCHID = "1234567890"
    sandbox_settings.WALLYT_MCH_ID = "777"

    assert get_gateway("wechat").config.mchid == "1234567890"
    assert get_gateway("wallyt").config.mch_id == "777"


def test_sandbox_with_a_platform_cert_dir_uses_certificate_mode(sandbox_settings: Any, tmp_path: Path) -> None:
    sandbox_settings.WECHAT_PAY_PLATFORM_CERT_DIR = str(tmp_path / "certs")

    config = get_gateway("wechat").config

    assert not config.public_key_mode and config.platform_cert_dir == str(tmp_path / "certs")
    assert config.public_key_pem is None and config.public_key_id is None


def test_cached_per_process_until_reset(sandbox_settings: Any) -> None:
    first = get_gateway("alipay")

    assert get_gateway("alipay") is first
    reset_gateways()
    assert get_gateway("alipay") is not first


def test_failures_are_not_cached(empty_settings: Any, sandbox_dir: Path) -> None:
    with pytest.raises(ChannelNotConfigured):
        get_gateway("wallyt")
    empty_settings.SANDBOX_ENABLED = True
    empty_settings.SANDBOX_DATA_DIR = sandbox_dir
    empty_settings.WALLYT_API_URL = "http://127.0.0.1:8100/wallyt/pay/gateway"
    empty_settings.WALLYT_NOTIFY_URL = "https://m.example/notify/wallyt/"

    assert isinstance(get_gateway("wallyt"), WallytGateway)


def test_wrong_apiv3_key_length(sandbox_settings: Any) -> None:
    sandbox_settings.WECHAT_PAY_API_V3_KEY = "short"

    with pytest.raises(ChannelNotConfigured, match="WECHAT_PAY_API_V3_KEY") as caught:
        get_gateway("wechat")

    assert "short" not in caught.value.message


def test_unreadable_key_file_names_the_setting(sandbox_settings: Any, tmp_path: Path) -> None:
    sandbox_settings.WECHAT_PAY_PRIVATE_KEY_PATH = str(tmp_path / "nope.pem")

    with pytest.raises(ChannelNotConfigured) as caught:
        get_gateway("wechat")

    assert caught.value.details["setting"] == "WECHAT_PAY_PRIVATE_KEY_PATH"


def test_inline_alipay_keys_are_used(sandbox_settings: Any, sandbox_dir: Path) -> None:
    sandbox_settings.ALIPAY_PRIVATE_KEY = (sandbox_dir / "alipay" / "app_private_key.pem").read_text()
    sandbox_settings.ALIPAY_PUBLIC_KEY = (sandbox_dir / "alipay" / "alipay_public_key.pem").read_text()
    sandbox_settings.SANDBOX_DATA_DIR = sandbox_dir

    assert get_gateway("alipay").config.app_private_key_pem == sandbox_settings.ALIPAY_PRIVATE_KEY


def test_sandbox_without_credentials_file(empty_settings: Any, tmp_path: Path) -> None:
    empty_settings.SANDBOX_ENABLED = True
    empty_settings.SANDBOX_DATA_DIR = tmp_path

    with pytest.raises(ChannelNotConfigured, match=r"credentials\.json"):
        get_gateway("alipay")


def test_wallyt_rsa_needs_both_key_files_and_no_md5_key(empty_settings: Any) -> None:
    empty_settings.WALLYT_SIGN_TYPE = "RSA_1_256"

    with pytest.raises(ChannelNotConfigured) as caught:
        get_gateway("wallyt")

    missing = caught.value.details["missing"]
    assert "WALLYT_PRIVATE_KEY_PATH" in missing and "WALLYT_PLATFORM_PUBLIC_KEY_PATH" in missing
    assert "WALLYT_SECRET_KEY" not in missing


def test_wallyt_rsa_from_key_files(sandbox_settings: Any, tmp_path: Path) -> None:
    private, _ = _pem_pair()
    _, public = _pem_pair()
    (tmp_path / "ours.pem").write_text(private)
    (tmp_path / "platform.pem").write_text(public)
    sandbox_settings.WALLYT_SIGN_TYPE = "rsa_1_256"
    sandbox_settings.WALLYT_PRIVATE_KEY_PATH = str(tmp_path / "ours.pem")
    sandbox_settings.WALLYT_PLATFORM_PUBLIC_KEY_PATH = str(tmp_path / "platform.pem")

    config = get_gateway("wallyt").config

    assert config.sign_type == "RSA_1_256" and config.private_key_pem == private and config.secret_key == ""


def test_wechat_public_key_and_certificate_dir_together_keep_both(sandbox_settings: Any, sandbox_dir: Path) -> None:
    sandbox_settings.WECHAT_PAY_PLATFORM_CERT_DIR = "/var/certs"
    sandbox_settings.WECHAT_PAY_PUBLIC_KEY_PATH = str(sandbox_dir / "wechat" / "platform_public_key.pem")
    sandbox_settings.WECHAT_PAY_PUBLIC_KEY_ID = "PUB_KEY_ID_0119000000012025000000000000"

    config = get_gateway("wechat").config

    assert config.public_key_mode and config.platform_cert_dir == "/var/certs"
