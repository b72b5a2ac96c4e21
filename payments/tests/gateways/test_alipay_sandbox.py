"""AlipayGateway end to end against the local sandbox (sandbox/testing.py), real SDK, real HTTP."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from core.errors import GatewayUnavailable, SignatureInvalid, TradeAlreadyPaid, TradeNotFound
from payments.gateways.alipay import AlipayConfig, AlipayGateway
from payments.gateways.base import Notification, PrepayRequest, RefundRequest, RefundState, TradeState

from .conftest import Receiver


def make_gateway(sandbox: Any, receiver: Receiver) -> AlipayGateway:
    gateway = AlipayGateway(
        AlipayConfig(
            app_id=sandbox.credentials["alipay"]["app_id"],
            app_private_key_pem=sandbox.read("alipay/app_private_key.pem"),
            alipay_public_key_pem=sandbox.read("alipay/alipay_public_key.pem"),
            gateway_url=sandbox.alipay_gateway,
            notify_url=receiver.url,
            return_url="https://merchant.example/return/alipay/",
            timeout=3,
        )
    )
    receiver.gateway = gateway
    return gateway


def open_cashier(product: str, gateway: AlipayGateway) -> PrepayRequest:
    """create() + the buyer opening the pay_url (Alipay creates the trade only then)."""
    request = PrepayRequest(
        payment_no=f"AP{secrets.token_hex(8)}",
        amount_fen=1234,
        description="储物柜 12 号",
        product=product,
        expires_at=datetime.now(UTC) + timedelta(minutes=15),
        notify_url="",
    )
    result = gateway.create(request)
    assert result.pay_url is not None
    assert requests.get(result.pay_url, timeout=5).status_code == 200
    return request


@pytest.mark.parametrize("product", ["page", "wap"])
def test_pay_notify_return_query_close_refund(sandbox: Any, receiver: Receiver, product: str) -> None:
    gateway = make_gateway(sandbox, receiver)
    request = open_cashier(product, gateway)
    assert gateway.query(request.payment_no).state is TradeState.PENDING

    paid_page = requests.post(
        f"{sandbox.base_url}/cashier/alipay/{request.payment_no}/pay", allow_redirects=False, timeout=5
    )
    (paid,) = receiver.wait(1)
    assert isinstance(paid, Notification) and paid.trade is not None
    assert (paid.trade.payment_no, paid.trade.state, paid.trade.amount_fen) == (
        request.payment_no,
        TradeState.SUCCEEDED,
        1234,
    )
    return_params = dict(parse_qsl(urlsplit(paid_page.headers["Location"]).query, keep_blank_values=True))
    assert gateway.verify_return(return_params).payment_no == request.payment_no
    with pytest.raises(SignatureInvalid):
        gateway.verify_return({**return_params, "total_amount": "0.01"})

    assert gateway.query(request.payment_no).state is TradeState.SUCCEEDED
    with pytest.raises(TradeAlreadyPaid):
        gateway.close(request.payment_no)

    refund_no = f"RF{secrets.token_hex(8)}"
    refund_request = RefundRequest(
        refund_no=refund_no,
        payment_no=request.payment_no,
        gateway_trade_no=paid.trade.gateway_trade_no,
        refund_fen=1000,
        total_fen=1234,
        reason="locker fault",
    )
    assert gateway.refund(refund_request).state is RefundState.SUCCEEDED
    assert gateway.refund(refund_request).state is RefundState.PROCESSING  # repeat: fund_change N, ask the query
    queried = gateway.query_refund(refund_no, payment_no=request.payment_no)
    assert (queried.state, queried.amount_fen) == (RefundState.SUCCEEDED, 1000)
    refunded = receiver.wait(2)[1]
    assert isinstance(refunded, Notification) and refunded.refund is not None
    assert refunded.refund.refund_no == refund_no and refunded.refund.state is RefundState.SUCCEEDED


def test_close_unpaid_and_unknown(sandbox: Any, receiver: Receiver) -> None:
    gateway = make_gateway(sandbox, receiver)
    request = open_cashier("page", gateway)

    gateway.close(request.payment_no)
    gateway.close(request.payment_no)  # ACQ.TRADE_STATUS_ERROR on a closed trade: query says CLOSED, fine
    assert gateway.query(request.payment_no).state is TradeState.CLOSED
    with pytest.raises(TradeNotFound):
        gateway.query(f"AP{secrets.token_hex(8)}")
    with pytest.raises(TradeNotFound):
        gateway.close(f"AP{secrets.token_hex(8)}")


@pytest.mark.parametrize("kind", ["bad_signature", "malformed", "http_500", "timeout"])
def test_faults_are_unavailable(sandbox: Any, receiver: Receiver, kind: str) -> None:
    gateway = make_gateway(sandbox, receiver)
    request = open_cashier("page", gateway)
    sandbox.fault("alipay.query", kind, ms=4000)

    with pytest.raises(GatewayUnavailable):
        gateway.query(request.payment_no)


def test_bad_notification_signature_is_refused_then_retried(sandbox: Any, receiver: Receiver) -> None:
    gateway = make_gateway(sandbox, receiver)
    request = open_cashier("page", gateway)
    sandbox.fault("alipay.notify", "bad_signature")

    sandbox.control(f"alipay/transactions/{request.payment_no}/pay", json={})
    first, second = receiver.wait(2, timeout=20)

    assert isinstance(first, SignatureInvalid)
    assert isinstance(second, Notification) and second.trade is not None
    assert second.trade.state is TradeState.SUCCEEDED
