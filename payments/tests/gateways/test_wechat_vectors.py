"""WeChat Pay v3 known-answer tests with the official wechatpay-go vectors (no network)."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509 import load_pem_x509_certificate

from core.errors import GatewayUnavailable, NotificationInvalid, SignatureInvalid
from payments.gateways.wechat import WeChatConfig, WeChatGateway

from .conftest import vector_json, vector_text
from .stub_http import StubResponse, stub_server, unused_port_url

NOTIFY = vector_json("wechat_notify_official.json")
NOTIFY_TS = 1624523846
PLAINTEXT_MCHID = "1234567890"
PLAINTEXT_APPID = "054aa7d7a2a54ab5898df65bd96f001c"
CERT_SERIAL = "D7CE59D1F522D701"


def cert_mode_gateway(cert_dir: Path, *, clock_value: float = NOTIFY_TS + 3, api_base: str = "") -> WeChatGateway:
    cert_dir.mkdir(exist_ok=True)
    shutil.copy(Path(__file__).parent / "vectors" / "go_cert_D7CE59D1F522D701.pem", cert_dir / f"{CERT_SERIAL}.pem")
    config = WeChatConfig(
        appid=PLAINTEXT_APPID,
        mchid=PLAINTEXT_MCHID,
        merchant_serial_no="BE6DCDA7A5931FA0",
        private_key_pem=vector_text("go_merchant_private_key_BE6DCDA7A5931FA0.pem"),
        apiv3_key=NOTIFY["apiv3_key"],
        notify_url="https://example.invalid/notify",
        api_base=api_base or unused_port_url(),
        platform_cert_dir=str(cert_dir),
    )
    return WeChatGateway(config, clock=lambda: clock_value)


def test_official_notification_verifies_and_decrypts(tmp_path: Path) -> None:
    gateway = cert_mode_gateway(tmp_path / "certs")

    notification = gateway.parse_notification(NOTIFY["headers"], NOTIFY["body"].encode("utf-8"))

    assert notification.event_id == "3119dfba-e649-5eec-ab1e-3412bc4d2e17"
    assert notification.event_type == "PAYSCORE.USER_OPEN_SERVICE"
    assert notification.trade is None and notification.refund is None  # neither a payment nor a refund event


def test_official_notification_through_django_style_meta_headers(tmp_path: Path) -> None:
    gateway = cert_mode_gateway(tmp_path / "certs")
    meta = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in NOTIFY["headers"].items()}

    assert gateway.parse_notification(meta, NOTIFY["body"].encode()).event_id.startswith("3119dfba")


def test_official_notification_lower_case_headers(tmp_path: Path) -> None:
    gateway = cert_mode_gateway(tmp_path / "certs")
    lower = {k.lower(): v for k, v in NOTIFY["headers"].items()}

    assert gateway.parse_notification(lower, NOTIFY["body"].encode()).event_type == "PAYSCORE.USER_OPEN_SERVICE"


@pytest.mark.parametrize("position", [0, 1, 50, 200, -3, -1])
def test_one_byte_change_in_body_fails(tmp_path: Path, position: int) -> None:
    gateway = cert_mode_gateway(tmp_path / "certs")
    body = bytearray(NOTIFY["body"].encode("utf-8"))
    body[position] ^= 0x01

    with pytest.raises(SignatureInvalid):
        gateway.parse_notification(NOTIFY["headers"], bytes(body))


@pytest.mark.parametrize("position", [0, 10, 100, 255])
def test_one_byte_change_in_signature_fails(tmp_path: Path, position: int) -> None:
    gateway = cert_mode_gateway(tmp_path / "certs")
    raw = bytearray(base64.b64decode(NOTIFY["headers"]["Wechatpay-Signature"]))
    raw[position] ^= 0x01
    headers = {**NOTIFY["headers"], "Wechatpay-Signature": base64.b64encode(bytes(raw)).decode()}

    with pytest.raises(SignatureInvalid):
        gateway.parse_notification(headers, NOTIFY["body"].encode())


@pytest.mark.parametrize("header", ["Wechatpay-Timestamp", "Wechatpay-Nonce"])
def test_changed_signed_header_fails(tmp_path: Path, header: str) -> None:
    gateway = cert_mode_gateway(tmp_path / "certs")
    headers = {**NOTIFY["headers"], header: NOTIFY["headers"][header][:-1] + "7"}

    with pytest.raises(SignatureInvalid):
        gateway.parse_notification(headers, NOTIFY["body"].encode())


def test_wrong_signature_type_fails(tmp_path: Path) -> None:
    gateway = cert_mode_gateway(tmp_path / "certs")
    headers = {**NOTIFY["headers"], "Wechatpay-Signature-Type": "WECHATPAY2-SM2-WITH-SM3"}

    with pytest.raises(SignatureInvalid):
        gateway.parse_notification(headers, NOTIFY["body"].encode())


def test_non_hex_serial_in_certificate_mode_fails(tmp_path: Path) -> None:
    gateway = cert_mode_gateway(tmp_path / "certs")
    headers = {**NOTIFY["headers"], "Wechatpay-Serial": "PUB_KEY_ID_0114232134912410000000000000"}

    with pytest.raises(SignatureInvalid):
        gateway.parse_notification(headers, NOTIFY["body"].encode())


def test_ten_minutes_later_is_stale(tmp_path: Path) -> None:
    gateway = cert_mode_gateway(tmp_path / "certs", clock_value=NOTIFY_TS + 600)

    with pytest.raises(NotificationInvalid, match="stale"):
        gateway.parse_notification(NOTIFY["headers"], NOTIFY["body"].encode())


def test_ten_minutes_early_is_stale(tmp_path: Path) -> None:
    gateway = cert_mode_gateway(tmp_path / "certs", clock_value=NOTIFY_TS - 600)

    with pytest.raises(NotificationInvalid, match="stale"):
        gateway.parse_notification(NOTIFY["headers"], NOTIFY["body"].encode())


def test_other_merchant_is_rejected(tmp_path: Path) -> None:
    gateway = cert_mode_gateway(tmp_path / "certs")
    other = WeChatGateway(
        WeChatConfig(**{**gateway.config.__dict__, "mchid": "1900000109"}), clock=lambda: NOTIFY_TS + 3
    )

    with pytest.raises(NotificationInvalid, match="mchid"):
        other.parse_notification(NOTIFY["headers"], NOTIFY["body"].encode())


def test_other_app_is_rejected(tmp_path: Path) -> None:
    gateway = cert_mode_gateway(tmp_path / "certs")
    other = WeChatGateway(
        WeChatConfig(**{**gateway.config.__dict__, "appid": "wx0000000000000000"}), clock=lambda: NOTIFY_TS + 3
    )

    with pytest.raises(NotificationInvalid, match="appid"):
        other.parse_notification(NOTIFY["headers"], NOTIFY["body"].encode())


def test_wrong_apiv3_key_fails_authentication(tmp_path: Path) -> None:
    gateway = cert_mode_gateway(tmp_path / "certs")
    other = WeChatGateway(
        WeChatConfig(**{**gateway.config.__dict__, "apiv3_key": "testMchAPIv3Key1"}), clock=lambda: NOTIFY_TS + 3
    )

    with pytest.raises(SignatureInvalid):
        other.parse_notification(NOTIFY["headers"], NOTIFY["body"].encode())


def test_certificate_download_decrypts_to_the_published_certificate(tmp_path: Path) -> None:
    """go_v3_certificates_response.json + key mockAPIv3Key1234 -> certificate D7CE59D1F522D701, cached atomically."""
    answer = vector_text("go_v3_certificates_response.json").encode()
    cert_dir = tmp_path / "certs"
    with stub_server(lambda _: StubResponse(200, answer, {"Content-Type": "application/json"})) as stub:
        config = WeChatConfig(
            appid=PLAINTEXT_APPID,
            mchid=PLAINTEXT_MCHID,
            merchant_serial_no="BE6DCDA7A5931FA0",
            private_key_pem=vector_text("go_merchant_private_key_BE6DCDA7A5931FA0.pem"),
            apiv3_key="mockAPIv3Key1234",
            notify_url="https://example.invalid/notify",
            api_base=stub.base_url,
            platform_cert_dir=str(cert_dir),
        )
        client = WeChatGateway(config).client()

    assert [r.path for r in stub.requests] == ["/v3/certificates"]
    assert [f"{c.serial_number:X}" for c in client._core._certificates] == [CERT_SERIAL]
    assert sorted(p.name for p in cert_dir.iterdir()) == [f"{CERT_SERIAL}.pem"]  # no temp file left behind
    cached = load_pem_x509_certificate((cert_dir / f"{CERT_SERIAL}.pem").read_bytes())
    published = load_pem_x509_certificate(vector_text("go_cert_D7CE59D1F522D701.pem").encode())
    assert cached == published


def test_unknown_serial_in_certificate_mode_is_signature_invalid(tmp_path: Path) -> None:
    """A refresh was done moments ago (at construction), so an unknown serial is refused without I/O."""
    answer = vector_text("go_v3_certificates_response.json").encode()
    with stub_server(lambda _: StubResponse(200, answer, {"Content-Type": "application/json"})) as stub:
        config = WeChatConfig(
            appid=PLAINTEXT_APPID,
            mchid=PLAINTEXT_MCHID,
            merchant_serial_no="BE6DCDA7A5931FA0",
            private_key_pem=vector_text("go_merchant_private_key_BE6DCDA7A5931FA0.pem"),
            apiv3_key="mockAPIv3Key1234",
            notify_url="https://example.invalid/notify",
            api_base=stub.base_url,
            platform_cert_dir=str(tmp_path / "certs"),
        )
        gateway = WeChatGateway(config, clock=lambda: NOTIFY_TS)
        gateway.client()
        headers = {**NOTIFY["headers"], "Wechatpay-Serial": "0ABCDEF0123456"}

        with pytest.raises(SignatureInvalid):
            gateway.parse_notification(headers, NOTIFY["body"].encode())

    assert len(stub.requests) == 1


def test_jsapi_pay_params_are_signed_per_a9(tmp_path: Path) -> None:
    gateway = cert_mode_gateway(tmp_path / "certs", clock_value=1700000000.9)

    params = gateway.jsapi_pay_params(prepay_id="wx201410272009395522657a690389285100")

    assert params["timeStamp"] == "1700000000" and params["signType"] == "RSA"
    assert params["package"] == "prepay_id=wx201410272009395522657a690389285100"
    message = "\n".join([params["appId"], params["timeStamp"], params["nonceStr"], params["package"]]) + "\n"
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    public_key = load_pem_private_key(
        vector_text("go_merchant_private_key_BE6DCDA7A5931FA0.pem").encode(), password=None
    ).public_key()
    public_key.verify(base64.b64decode(params["paySign"]), message.encode(), padding.PKCS1v15(), hashes.SHA256())


def test_secrets_are_not_in_the_config_repr(tmp_path: Path) -> None:
    gateway = cert_mode_gateway(tmp_path / "certs")

    text = repr(gateway.config)

    assert NOTIFY["apiv3_key"] not in text and "PRIVATE KEY" not in text


def test_notification_reply_shapes(tmp_path: Path) -> None:
    gateway = cert_mode_gateway(tmp_path / "certs")

    ok, failed = gateway.notification_reply(ok=True), gateway.notification_reply(ok=False, message="boom")

    assert (ok.status, ok.body) == (204, b"")
    assert failed.status >= 400 and json.loads(failed.body) == {"code": "FAIL", "message": "boom"}


def test_failed_certificate_refresh_keeps_the_known_certificates(tmp_path: Path) -> None:
    """An unknown serial triggers one refresh; the gateway is down (retryable), the known cert still works."""
    gateway = cert_mode_gateway(tmp_path / "certs")
    headers = {**NOTIFY["headers"], "Wechatpay-Serial": "0ABCDEF0123456"}

    with pytest.raises(GatewayUnavailable):
        gateway.parse_notification(headers, NOTIFY["body"].encode())
    with pytest.raises(SignatureInvalid):  # within the refresh interval: no second download attempt
        gateway.parse_notification(headers, NOTIFY["body"].encode())

    assert gateway.parse_notification(NOTIFY["headers"], NOTIFY["body"].encode()).event_id.startswith("3119dfba")
