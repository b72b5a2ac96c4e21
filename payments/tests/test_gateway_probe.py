"""``manage.py gateway_probe`` against the sandbox gateways: every channel passes with the right
credentials and fails, naming what to fix, with a wrong key on either side."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management import call_command
from django.core.management.base import CommandError

from payments.gateways.registry import reset_gateways
from payments.probe import probe

NONE = serialization.NoEncryption()


@pytest.fixture
def other_key(tmp_path) -> dict[str, str]:
    """A key pair nobody registered anywhere: (private PEM path, public PEM path, private PEM text)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, NONE)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "key.pem").write_bytes(private)
    (tmp_path / "pub.pem").write_bytes(public)
    return {"private_path": str(tmp_path / "key.pem"), "public_path": str(tmp_path / "pub.pem"), "private": private}


def run_probe(*gateways: str) -> tuple[str, CommandError | None]:
    out = StringIO()
    try:
        call_command("gateway_probe", *gateways, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def test_every_channel_passes_against_the_sandbox(gateways):
    output, failure = run_probe()

    assert failure is None, output
    assert "wechat: ok: our signature accepted, answer verified (HTTP 404 ORDER_NOT_EXIST" in output
    assert "alipay: ok: our signature accepted, answer verified (40004 ACQ.TRADE_NOT_EXIST" in output
    assert "wallyt: ok: our signature accepted, answer verified (ORDERNOTEXIST" in output
    assert re.search(r"clock [+-][01] s from the gateway's", output)  # its Date header has whole seconds


def test_the_probe_changes_nothing_at_the_gateway(gateways):
    before = {name: len(gateways.control(f"{name}/transactions")["transactions"]) for name in ("wechat",)}
    run_probe()
    assert {name: len(gateways.control(f"{name}/transactions")["transactions"]) for name in before} == before


@pytest.mark.parametrize(
    ("gateway", "setting", "side", "expected"),
    [
        ("wechat", "WECHAT_PAY_PRIVATE_KEY_PATH", "private_path", "our signature REFUSED"),
        ("wechat", "WECHAT_PAY_PUBLIC_KEY_PATH", "public_path", "our signature accepted, answer DOES NOT VERIFY"),
        ("alipay", "ALIPAY_PRIVATE_KEY", "private", "our signature REFUSED"),
        ("alipay", "ALIPAY_PUBLIC_KEY_PATH", "public_path", "our signature accepted, answer DOES NOT VERIFY"),
    ],
)
def test_a_wrong_key_fails_clearly(gateways, settings, other_key, gateway, setting, side, expected):
    value = other_key[side]
    setattr(settings, setting, value.decode() if isinstance(value, bytes) else value)
    reset_gateways()

    output, failure = run_probe(gateway)

    assert failure is not None and gateway in str(failure)
    assert f"{gateway}: FAILED: {expected}" in output
    assert setting.removesuffix("_PATH") in output.split("fix:", 1)[1]  # the fix names the setting


def test_a_wrong_wallyt_key_fails_clearly(gateways, settings):
    settings.WALLYT_SECRET_KEY = "0" * 32
    reset_gateways()

    output, failure = run_probe("wallyt")

    assert failure is not None
    assert "wallyt: FAILED: our signature REFUSED" in output and "WALLYT_SECRET_KEY" in output


def test_a_wrong_serial_fails_with_the_settings_to_check(gateways, settings):
    settings.WECHAT_PAY_SERIAL_NO = "0123456789ABCDEF"
    reset_gateways()

    result = probe("wechat")

    assert not result.ok and result.signature_accepted is False
    assert "SIGN_ERROR" in result.said and "WECHAT_PAY_SERIAL_NO" in result.fix


def test_an_unconfigured_channel_says_what_is_missing(settings, tmp_path):
    settings.SANDBOX_ENABLED = False
    for name in ("WECHAT_PAY_MCHID", "WECHAT_PAY_SERIAL_NO", "WECHAT_PAY_PRIVATE_KEY_PATH"):
        setattr(settings, name, "")
    reset_gateways()
    try:
        result = probe("wechat")
    finally:
        reset_gateways()
    assert not result.ok and "WECHAT_PAY_MCHID" in result.said


def test_an_unreachable_gateway_names_the_base_url(gateways, settings):
    settings.WALLYT_API_URL = "http://127.0.0.1:9/pay/gateway"  # port 9 refuses
    reset_gateways()
    result = probe("wallyt")
    assert not result.ok and result.signature_accepted is None and "WALLYT_API_URL" in result.fix


def test_no_secret_is_printed(gateways, settings):
    output, _ = run_probe()
    secrets = [Path(settings.SANDBOX_DATA_DIR, "wallyt", "secret_key").read_text().strip()]
    secrets.append(Path(settings.SANDBOX_DATA_DIR, "wechat", "apiv3_key").read_text().strip())
    assert not any(secret in output for secret in secrets)
