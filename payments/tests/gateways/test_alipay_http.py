"""AlipayGateway over real HTTP against a local stub that verifies and signs like Alipay (fzlee test keys)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from core.errors import GatewayRejected, GatewayUnavailable, RefundNotFound, TradeAlreadyPaid, TradeNotFound
from payments.gateways.alipay import AlipayConfig, AlipayGateway
from payments.gateways.base import PrepayRequest, RefundRequest, RefundState, TradeState

from .conftest import vector_text
from .stub_http import StubRequest, StubResponse, stub_server, unused_port_url

APP_ID = "2016080300157207"
ALIPAY_KEY = load_pem_private_key(vector_text("fzlee_ali_ali_private_key.pem").encode(), password=None)
APP_PUBLIC = load_pem_public_key(vector_text("fzlee_app_app_public_key.pem").encode())

Answer = Callable[[str, dict[str, Any]], Any]  # (method, biz_content) -> inner dict | StubResponse


def verify_request(params: dict[str, str]) -> None:
    unsigned = {k: v for k, v in params.items() if k != "sign"}
    message = "&".join(f"{k}={v}" for k, v in sorted(unsigned.items()))
    APP_PUBLIC.verify(base64.b64decode(params["sign"]), message.encode(), padding.PKCS1v15(), hashes.SHA256())


def signed_body(method: str, inner: dict[str, Any], *, tamper: bool = False, sign: bool = True) -> bytes:
    inner_text = json.dumps(inner, ensure_ascii=False, separators=(",", ":"))
    signature = ALIPAY_KEY.sign(inner_text.encode(), padding.PKCS1v15(), hashes.SHA256())
    if tamper:
        inner_text = inner_text.replace("10000", "10001", 1) if "10000" in inner_text else inner_text + " "
    key = method.replace(".", "_") + "_response"
    sign_part = f',"sign":"{base64.b64encode(signature).decode()}"' if sign else ""
    return f'{{"{key}":{inner_text}{sign_part}}}'.encode()


def handler(answer: Answer) -> Callable[[StubRequest], StubResponse]:
    def handle(request: StubRequest) -> StubResponse:
        params = dict(parse_qsl(urlsplit(request.path).query, keep_blank_values=True))
        verify_request(params)
        method = params["method"]
        result = answer(method, json.loads(params["biz_content"]))
        if isinstance(result, StubResponse):
            return result
        return StubResponse(200, signed_body(method, result), {"Content-Type": "application/json;charset=utf-8"})

    return handle


def gateway_for(base_url: str) -> AlipayGateway:
    return AlipayGateway(
        AlipayConfig(
            app_id=APP_ID,
            app_private_key_pem=vector_text("fzlee_app_app_private_key.pem"),
            alipay_public_key_pem=vector_text("fzlee_ali_ali_public_key.pem"),
            gateway_url=f"{base_url}/gateway.do",
            notify_url="https://merchant.example/notify/alipay/",
            return_url="https://merchant.example/return/alipay/",
            timeout=2,
        )
    )


def ok(**fields: Any) -> dict[str, Any]:
    return {"code": "10000", "msg": "Success", **fields}


def business_failed(sub_code: str) -> dict[str, Any]:
    return {"code": "40004", "msg": "Business Failed", "sub_code": sub_code, "sub_msg": sub_code.lower()}


@pytest.mark.parametrize(("product", "method"), [("page", "alipay.trade.page.pay"), ("wap", "alipay.trade.wap.pay")])
def test_create_builds_a_signed_pay_url(product: str, method: str) -> None:
    gateway = gateway_for("https://sandbox.example")
    request = PrepayRequest(
        payment_no="P1",
        amount_fen=1234,
        description="柜子 12",
        product=product,
        expires_at=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
        notify_url="",
    )

    result = gateway.create(request)

    assert result.pay_url is not None and result.pay_url.startswith("https://sandbox.example/gateway.do?")
    params = dict(parse_qsl(urlsplit(result.pay_url).query, keep_blank_values=True))
    verify_request(params)
    biz = json.loads(params["biz_content"])
    assert params["method"] == method and params["app_id"] == APP_ID and params["sign_type"] == "RSA2"
    assert params["notify_url"] == "https://merchant.example/notify/alipay/"
    assert params["return_url"] == "https://merchant.example/return/alipay/"
    assert biz["total_amount"] == "12.34" and biz["out_trade_no"] == "P1" and biz["subject"] == "柜子 12"
    assert biz["time_expire"] == "2030-01-02 11:04:05"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("WAIT_BUYER_PAY", TradeState.PENDING),
        ("TRADE_SUCCESS", TradeState.SUCCEEDED),
        ("TRADE_FINISHED", TradeState.SUCCEEDED),
        ("TRADE_CLOSED", TradeState.CLOSED),
    ],
)
def test_query_maps_trade_status(status: str, expected: TradeState) -> None:
    answer = ok(out_trade_no="P1", trade_no="2030T1", trade_status=status, total_amount="12.34")
    with stub_server(handler(lambda m, b: answer)) as stub:
        trade = gateway_for(stub.base_url).query("P1")

    assert (trade.state, trade.amount_fen, trade.gateway_trade_no, trade.gateway_state) == (
        expected,
        1234,
        "2030T1",
        status,
    )


@pytest.mark.parametrize(
    ("answer", "error_type"),
    [
        (lambda m, b: business_failed("ACQ.TRADE_NOT_EXIST"), TradeNotFound),
        (lambda m, b: business_failed("ACQ.INVALID_PARAMETER"), GatewayRejected),
        (lambda m, b: business_failed("ACQ.SYSTEM_ERROR"), GatewayUnavailable),
        (
            lambda m, b: {"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.unknow-error"},
            GatewayUnavailable,
        ),
        (
            lambda m, b: StubResponse(200, signed_body(m, ok(trade_status="TRADE_SUCCESS"), tamper=True)),
            GatewayUnavailable,
        ),
        (
            lambda m, b: StubResponse(200, signed_body(m, business_failed("ACQ.TRADE_NOT_EXIST"), sign=False)),
            GatewayUnavailable,
        ),
        (
            lambda m, b: StubResponse(200, b'{"error_response":{"code":"40002","msg":"Invalid Arguments"},"sign":"x"}'),
            GatewayUnavailable,
        ),
        (lambda m, b: StubResponse(500, b"oops"), GatewayUnavailable),
        (lambda m, b: StubResponse(200, b"<html>not json</html>"), GatewayUnavailable),
        (lambda m, b: ok(trade_status="SOMETHING_NEW", out_trade_no="P1"), GatewayUnavailable),
    ],
    ids=[
        "not-exist",
        "invalid-param",
        "system-error",
        "20000",
        "bad-signature",
        "unsigned",
        "error-response",
        "http-500",
        "not-json",
        "unknown-status",
    ],
)
def test_query_errors(answer: Answer, error_type: type[Exception]) -> None:
    with stub_server(handler(answer)) as stub, pytest.raises(error_type) as caught:
        gateway_for(stub.base_url).query("P1")

    assert type(caught.value) is error_type


def test_connection_refused_is_unavailable() -> None:
    with pytest.raises(GatewayUnavailable):
        gateway_for(unused_port_url()).query("P1")


def test_close_ok() -> None:
    with stub_server(handler(lambda m, b: ok(out_trade_no=b["out_trade_no"]))) as stub:
        gateway_for(stub.base_url).close("P1")

    assert "method=alipay.trade.close" in stub.requests[0].path


@pytest.mark.parametrize(
    ("trade_status", "raises"),
    [("TRADE_SUCCESS", TradeAlreadyPaid), ("TRADE_FINISHED", TradeAlreadyPaid), ("TRADE_CLOSED", None)],
)
def test_close_status_error_asks_query(trade_status: str, raises: type[Exception] | None) -> None:
    def answer(method: str, biz: dict[str, Any]) -> dict[str, Any]:
        if method == "alipay.trade.close":
            return business_failed("ACQ.TRADE_STATUS_ERROR")
        return ok(out_trade_no="P1", trade_status=trade_status, total_amount="1.00")

    with stub_server(handler(answer)) as stub:
        gateway = gateway_for(stub.base_url)
        if raises is None:
            gateway.close("P1")
        else:
            with pytest.raises(raises):
                gateway.close("P1")


def test_close_of_an_unknown_trade_is_trade_not_found() -> None:
    with (
        stub_server(handler(lambda m, b: business_failed("ACQ.TRADE_NOT_EXIST"))) as stub,
        pytest.raises(TradeNotFound),
    ):
        gateway_for(stub.base_url).close("P1")


REFUND = RefundRequest(
    refund_no="R1", payment_no="P1", gateway_trade_no=None, refund_fen=1000, total_fen=1234, reason="locker fault"
)


@pytest.mark.parametrize(("fund_change", "expected"), [("Y", RefundState.SUCCEEDED), ("N", RefundState.PROCESSING)])
def test_refund_uses_fund_change(fund_change: str, expected: RefundState) -> None:
    answer = ok(out_trade_no="P1", trade_no="2030T1", fund_change=fund_change, refund_fee="10.00")
    with stub_server(handler(lambda m, b: answer)) as stub:
        status = gateway_for(stub.base_url).refund(REFUND)

    sent = json.loads(dict(parse_qsl(urlsplit(stub.requests[0].path).query))["biz_content"])
    assert sent == {
        "refund_amount": "10.00",
        "out_request_no": "R1",
        "refund_reason": "locker fault",
        "out_trade_no": "P1",
    }
    # refund_fee is the trade's cumulative refunded amount (PROTOCOLS F.5), never copied from our request
    assert (status.state, status.refund_no, status.refunded_total_fen, status.amount_fen) == (
        expected,
        "R1",
        1000,
        None,
    )


def test_refund_refused() -> None:
    refusal = handler(lambda m, b: business_failed("ACQ.SELLER_BALANCE_NOT_ENOUGH"))
    with stub_server(refusal) as stub, pytest.raises(GatewayRejected) as caught:
        gateway_for(stub.base_url).refund(REFUND)

    assert caught.value.gateway_code == "ACQ.SELLER_BALANCE_NOT_ENOUGH"


def test_query_refund() -> None:
    answer = ok(out_trade_no="P1", out_request_no="R1", refund_status="REFUND_SUCCESS", refund_amount="10.00")
    with stub_server(handler(lambda m, b: answer)) as stub:
        status = gateway_for(stub.base_url).query_refund("R1", payment_no="P1")

    sent = json.loads(dict(parse_qsl(urlsplit(stub.requests[0].path).query))["biz_content"])
    assert sent == {"out_request_no": "R1", "out_trade_no": "P1"}
    assert status.state is RefundState.SUCCEEDED
    assert status.amount_fen == 1000


@pytest.mark.parametrize(
    "answer",
    [ok(out_trade_no="P1", out_request_no="R1"), business_failed("ACQ.TRADE_NOT_EXIST")],
    ids=["without-refund_status", "trade-not-exist"],
)
def test_query_refund_unknown_to_alipay(answer: dict) -> None:
    """PROTOCOLS B.5: no ``refund_status`` means "not received or failed": the refund never reached Alipay."""
    with stub_server(handler(lambda m, b: answer)) as stub, pytest.raises(RefundNotFound):
        gateway_for(stub.base_url).query_refund("R1", payment_no="P1")
