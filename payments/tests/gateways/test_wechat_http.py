"""WeChatGateway over real HTTP against a local stub that signs like WeChat Pay (published test keys).

Checks the base-URL override, the request signature, answer mapping, and that every answer the
SDK cannot verify (bad signature, missing headers, unknown serial, malformed body) and every
transport failure becomes ``GatewayUnavailable``.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key
from cryptography.x509 import load_pem_x509_certificate

from core.errors import (
    GatewayRejected,
    GatewayUnavailable,
    RefundNotFound,
    TradeAlreadyPaid,
    TradeNotFound,
)
from payments.gateways.base import PrepayRequest, RefundRequest, RefundState, TradeState
from payments.gateways.wechat import WeChatConfig, WeChatGateway

from .conftest import vector_text
from .stub_http import StubRequest, StubResponse, stub_server, unused_port_url

PUBLIC_KEY_ID = "PUB_KEY_ID_0114232134912410000000000000"
PLATFORM_KEY = load_pem_private_key(vector_text("go_wechatpay_private_key.pem").encode(), password=None)
PLATFORM_PUBLIC_PEM = (
    load_pem_x509_certificate(vector_text("go_cert_D7CE59D1F522D701.pem").encode())
    .public_key()
    .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
MERCHANT_KEY_PEM = vector_text("go_merchant_private_key_BE6DCDA7A5931FA0.pem")
APIV3_KEY = "0123456789abcdef0123456789abcdef"
MCHID, APPID = "1900000109", "wxd678efh567hg6787"


def signed(status: int, payload: dict | None, *, serial: str = PUBLIC_KEY_ID, tamper: bool = False) -> StubResponse:
    body = b"" if payload is None else json.dumps(payload).encode()
    ts, nonce = str(int(time.time())), secrets.token_hex(16)
    message = f"{ts}\n{nonce}\n{body.decode()}\n".encode()
    signature = PLATFORM_KEY.sign(message, padding.PKCS1v15(), hashes.SHA256())
    if tamper:
        signature = bytes([signature[0] ^ 1]) + signature[1:]
    return StubResponse(
        status,
        body,
        {
            "Content-Type": "application/json; charset=utf-8",
            "Wechatpay-Timestamp": ts,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Serial": serial,
            "Wechatpay-Signature": base64.b64encode(signature).decode(),
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        },
    )


def error(status: int, code: str) -> StubResponse:
    return StubResponse(
        status, json.dumps({"code": code, "message": code.lower()}).encode(), {"Content-Type": "application/json"}
    )


def gateway_for(base_url: str, *, clock: Callable[[], float] = time.time) -> WeChatGateway:
    config = WeChatConfig(
        appid=APPID,
        mchid=MCHID,
        merchant_serial_no="BE6DCDA7A5931FA0",
        private_key_pem=MERCHANT_KEY_PEM,
        apiv3_key=APIV3_KEY,
        notify_url="https://merchant.example/notify/wechat/",
        api_base=base_url,
        public_key_pem=PLATFORM_PUBLIC_PEM,
        public_key_id=PUBLIC_KEY_ID,
        timeout=(2, 2),
    )
    return WeChatGateway(config, clock=clock)  # the stub signs its answers now: the real clock judges them


Stubbed = tuple[WeChatGateway, list[StubRequest]]


@pytest.fixture
def wechat(request: pytest.FixtureRequest) -> Iterator[Stubbed]:
    handler: Callable[[StubRequest], StubResponse] = request.param
    with stub_server(handler) as stub:
        yield gateway_for(stub.base_url), stub.requests


def prepay(product: str, **extra: object) -> PrepayRequest:
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    return PrepayRequest(
        payment_no="P20300102001",
        amount_fen=1234,
        description="locker 12 rental",
        product=product,
        expires_at=expires,
        notify_url="",
        **extra,  # type: ignore[arg-type]
    )


TRADE = {
    "appid": APPID,
    "mchid": MCHID,
    "out_trade_no": "P20300102001",
    "transaction_id": "4200000000000000000000000001",
    "trade_state": "SUCCESS",
    "success_time": "2030-01-02T11:00:00+08:00",
    "amount": {"total": 1234, "currency": "CNY"},
}


@pytest.mark.parametrize("wechat", [lambda r: signed(200, {"prepay_id": "wx2030prepay"})], indirect=True)
def test_create_jsapi_goes_to_the_configured_base_and_signs_the_raw_body(wechat: Stubbed) -> None:
    gateway, seen = wechat

    result = gateway.create(prepay("jsapi", openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"))

    assert gateway.client()._core._gate_way == gateway.config.api_base  # the override is in effect
    (request,) = seen
    assert (request.method, request.path) == ("POST", "/v3/pay/transactions/jsapi")
    sent = json.loads(request.body)
    assert sent["amount"] == {"total": 1234, "currency": "CNY"}
    assert sent["time_expire"] == "2030-01-02T11:04:05+08:00"
    assert sent["payer"] == {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}
    assert sent["notify_url"] == "https://merchant.example/notify/wechat/"
    fields = dict(re.findall(r'(\w+)="([^"]*)"', request.headers["Authorization"]))
    message = f"POST\n{request.path}\n{fields['timestamp']}\n{fields['nonce_str']}\n{request.body.decode()}\n"
    merchant_public = load_pem_private_key(MERCHANT_KEY_PEM.encode(), password=None).public_key()
    merchant_public.verify(base64.b64decode(fields["signature"]), message.encode(), padding.PKCS1v15(), hashes.SHA256())
    assert result.pay_params is not None and result.pay_params["package"] == "prepay_id=wx2030prepay"


@pytest.mark.parametrize(
    "wechat", [lambda r: signed(200, {"code_url": "weixin://wxpay/bizpayurl?pr=abc"})], indirect=True
)
def test_create_native(wechat: Stubbed) -> None:
    gateway, seen = wechat

    assert gateway.create(prepay("native")).code_url == "weixin://wxpay/bizpayurl?pr=abc"
    assert seen[0].path == "/v3/pay/transactions/native"


@pytest.mark.parametrize("wechat", [lambda r: signed(200, {"h5_url": "https://wx.tenpay.com/h5"})], indirect=True)
def test_create_h5_sends_scene_info(wechat: Stubbed) -> None:
    gateway, seen = wechat

    assert gateway.create(prepay("h5", client_ip="203.0.113.9")).h5_url == "https://wx.tenpay.com/h5"
    assert json.loads(seen[0].body)["scene_info"] == {"payer_client_ip": "203.0.113.9", "h5_info": {"type": "Wap"}}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("NOTPAY", TradeState.PENDING),
        ("USERPAYING", TradeState.PENDING),
        ("SUCCESS", TradeState.SUCCEEDED),
        ("REFUND", TradeState.SUCCEEDED),
        ("CLOSED", TradeState.CLOSED),
        ("REVOKED", TradeState.CLOSED),
        ("PAYERROR", TradeState.FAILED),
    ],
)
def test_query_maps_trade_state(state: str, expected: TradeState) -> None:
    with stub_server(lambda r: signed(200, {**TRADE, "trade_state": state})) as stub:
        status = gateway_for(stub.base_url).query("P20300102001")

    assert stub.requests[0].path == f"/v3/pay/transactions/out-trade-no/P20300102001?mchid={MCHID}"
    assert (status.state, status.gateway_state, status.amount_fen) == (expected, state, 1234)
    assert (status.app_id, status.merchant_id) == (APPID, MCHID)
    assert status.paid_at == datetime(2030, 1, 2, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("answer", "error_type"),
    [
        (lambda r: error(404, "ORDER_NOT_EXIST"), TradeNotFound),
        (lambda r: error(400, "PARAM_ERROR"), GatewayRejected),
        (lambda r: error(500, "SYSTEM_ERROR"), GatewayUnavailable),
        (lambda r: error(429, "FREQUENCY_LIMITED"), GatewayUnavailable),
        (lambda r: StubResponse(502, b"<html>bad gateway</html>"), GatewayUnavailable),
        (lambda r: signed(200, TRADE, tamper=True), GatewayUnavailable),
        (lambda r: signed(200, TRADE, serial="PUB_KEY_ID_0000000000000000000000000999"), GatewayUnavailable),
        (
            lambda r: StubResponse(200, json.dumps(TRADE).encode(), {"Content-Type": "application/json"}),
            GatewayUnavailable,
        ),
        (lambda r: signed(200, {"trade_state": "WHATEVER"}), GatewayUnavailable),
        (lambda r: signed(200, {}), GatewayUnavailable),
    ],
    ids=[
        "not-found",
        "param-error",
        "5xx",
        "429",
        "html-5xx",
        "bad-signature",
        "unknown-serial",
        "unsigned",
        "unknown-state",
        "empty",
    ],
)
def test_query_errors(answer: Callable[[StubRequest], StubResponse], error_type: type[Exception]) -> None:
    with stub_server(answer) as stub, pytest.raises(error_type) as caught:
        gateway_for(stub.base_url).query("P20300102001")

    assert type(caught.value) is error_type


def test_missing_signature_type_is_unavailable() -> None:
    def answer(_: StubRequest) -> StubResponse:
        response = signed(200, TRADE)
        headers = {k: v for k, v in response.headers.items() if k != "Wechatpay-Signature-Type"}
        return StubResponse(response.status, response.body, headers)

    with stub_server(answer) as stub, pytest.raises(GatewayUnavailable):
        gateway_for(stub.base_url).query("P20300102001")


def test_connection_refused_is_unavailable() -> None:
    with pytest.raises(GatewayUnavailable):
        gateway_for(unused_port_url()).query("P20300102001")


def test_read_timeout_is_unavailable() -> None:
    def slow(_: StubRequest) -> StubResponse:
        time.sleep(3)
        return signed(200, TRADE)

    with stub_server(slow) as stub, pytest.raises(GatewayUnavailable, match="timed out"):
        gateway_for(stub.base_url).query("P20300102001")


@pytest.mark.parametrize("wechat", [lambda r: signed(204, None)], indirect=True)
def test_close_204_is_ok(wechat: Stubbed) -> None:
    gateway, seen = wechat

    gateway.close("P20300102001")

    assert seen[0].path == "/v3/pay/transactions/out-trade-no/P20300102001/close"
    assert json.loads(seen[0].body) == {"mchid": MCHID}


@pytest.mark.parametrize("wechat", [lambda r: error(400, "ORDER_CLOSED")], indirect=True)
def test_close_of_a_closed_order_is_ok(wechat: Stubbed) -> None:
    wechat[0].close("P20300102001")


@pytest.mark.parametrize("wechat", [lambda r: error(400, "ORDERPAID")], indirect=True)
def test_close_of_a_paid_order_raises_trade_already_paid(wechat: Stubbed) -> None:
    with pytest.raises(TradeAlreadyPaid):
        wechat[0].close("P20300102001")


@pytest.mark.parametrize("wechat", [lambda r: signed(204, None, tamper=True)], indirect=True)
def test_close_with_unverifiable_204_is_unavailable(wechat: Stubbed) -> None:
    with pytest.raises(GatewayUnavailable):
        wechat[0].close("P20300102001")


REFUND = {
    "refund_id": "50000000382019052709732678859",
    "out_refund_no": "R1",
    "out_trade_no": "P20300102001",
    "transaction_id": "4200000000000000000000000001",
    "status": "PROCESSING",
    "amount": {"total": 1234, "refund": 1000, "currency": "CNY"},
}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("PROCESSING", RefundState.PROCESSING),
        ("SUCCESS", RefundState.SUCCEEDED),
        ("CLOSED", RefundState.FAILED),
        ("ABNORMAL", RefundState.ABNORMAL),
    ],
)
def test_refund_and_query_refund_map_status(state: str, expected: RefundState) -> None:
    with stub_server(lambda r: signed(200, {**REFUND, "status": state})) as stub:
        gateway = gateway_for(stub.base_url)
        created = gateway.refund(
            RefundRequest(
                refund_no="R1",
                payment_no="P20300102001",
                gateway_trade_no=None,
                refund_fen=1000,
                total_fen=1234,
                reason="locker fault",
            )
        )
        queried = gateway.query_refund("R1", payment_no="P20300102001")

    sent = json.loads(stub.requests[0].body)
    assert stub.requests[0].path == "/v3/refund/domestic/refunds"
    assert sent["out_refund_no"] == "R1" and sent["amount"] == {"refund": 1000, "total": 1234, "currency": "CNY"}
    assert stub.requests[1].path == "/v3/refund/domestic/refunds/R1"
    for status in (created, queried):
        assert (status.state, status.refund_no, status.amount_fen) == (expected, "R1", 1000)


@pytest.mark.parametrize("wechat", [lambda r: error(404, "RESOURCE_NOT_EXISTS")], indirect=True)
def test_query_refund_unknown(wechat: Stubbed) -> None:
    with pytest.raises(RefundNotFound):
        wechat[0].query_refund("R404", payment_no="P1")


def test_construction_failure_in_certificate_mode_is_unavailable_and_retried(tmp_path) -> None:
    config = WeChatConfig(
        appid=APPID,
        mchid=MCHID,
        merchant_serial_no="BE6DCDA7A5931FA0",
        private_key_pem=MERCHANT_KEY_PEM,
        apiv3_key=APIV3_KEY,
        notify_url="https://merchant.example/n",
        api_base=unused_port_url(),
        platform_cert_dir=str(tmp_path / "certs"),
        timeout=(1, 1),
    )
    gateway = WeChatGateway(config)

    for _ in range(2):  # not cached as a failure: the next call tries again
        with pytest.raises(GatewayUnavailable):
            gateway.query("P1")


def test_time_expire_is_sent_in_china_time() -> None:
    with stub_server(lambda r: signed(200, {"code_url": "weixin://x"})) as stub:
        request = prepay("native")
        gateway_for(stub.base_url).create(
            PrepayRequest(**{**request.__dict__, "expires_at": datetime(2030, 1, 1, 16, 0, tzinfo=UTC)})
        )

    assert json.loads(stub.requests[0].body)["time_expire"] == "2030-01-02T00:00:00+08:00"


def test_configured_client_has_every_attribute_the_real_sdk_sets() -> None:
    """Guards the private-name override (A.2 (c)) against an SDK upgrade that adds attributes."""
    from wechatpayv3 import WeChatPay, WeChatPayType

    real = WeChatPay(
        wechatpay_type=WeChatPayType.JSAPI,
        mchid=MCHID,
        private_key=MERCHANT_KEY_PEM,
        cert_serial_no="BE6DCDA7A5931FA0",
        appid=APPID,
        apiv3_key=APIV3_KEY,
        notify_url="https://merchant.example/n",
        public_key=PLATFORM_PUBLIC_PEM,
        public_key_id=PUBLIC_KEY_ID,
    )
    ours = gateway_for("http://127.0.0.1:9").client()

    assert set(vars(real)) <= set(vars(ours))
    assert set(vars(real._core)) - {"_gate_way"} <= set(vars(ours._core))
    assert real._core._gate_way == "https://api.mch.weixin.qq.com"
    assert ours._core._gate_way == "http://127.0.0.1:9"
