"""WallytGateway end to end against the local sandbox (sandbox/testing.py), real HTTP, real XML."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.errors import GatewayUnavailable, SignatureInvalid, TradeAlreadyPaid, TradeNotFound
from payments.gateways.base import Notification, PrepayRequest, RefundRequest, RefundState, TradeState
from payments.gateways.wallyt import WallytConfig, WallytGateway

from .conftest import Receiver


def make_gateway(sandbox: Any, receiver: Receiver) -> WallytGateway:
    gateway = WallytGateway(
        WallytConfig(
            api_url=sandbox.wallyt_url,
            mch_id=sandbox.credentials["wallyt"]["mch_id"],
            secret_key=sandbox.read("wallyt/secret_key").strip(),
            notify_url=receiver.url,
            mini_appid=sandbox.credentials["wechat"]["mini_appid"],
            timeout=(3, 3),
        )
    )
    receiver.gateway = gateway
    return gateway


def create(gateway: WallytGateway) -> PrepayRequest:
    request = PrepayRequest(
        payment_no=f"WL{secrets.token_hex(8)}",
        amount_fen=1234,
        description="储物柜 12 号",
        product="jsapi",
        expires_at=datetime.now(UTC) + timedelta(minutes=15),
        notify_url="",
        openid="oSandboxPayer0000000000000000",
        client_ip="203.0.113.9",
    )
    result = gateway.create(request)
    assert result.pay_params is not None and result.pay_params["package"].startswith("prepay_id=")
    return request


def test_pay_notify_query_close_refund(sandbox: Any, receiver: Receiver) -> None:
    gateway = make_gateway(sandbox, receiver)
    request = create(gateway)
    assert gateway.query(request.payment_no).state is TradeState.PENDING

    sandbox.control(f"wallyt/transactions/{request.payment_no}/pay", json={})
    (paid,) = receiver.wait(1)
    assert isinstance(paid, Notification) and paid.trade is not None
    assert (paid.trade.payment_no, paid.trade.state, paid.trade.amount_fen) == (
        request.payment_no,
        TradeState.SUCCEEDED,
        1234,
    )
    assert paid.event_id == paid.trade.gateway_trade_no

    queried = gateway.query(request.payment_no)
    assert (queried.state, queried.gateway_trade_no) == (TradeState.SUCCEEDED, paid.trade.gateway_trade_no)
    with pytest.raises(TradeAlreadyPaid):
        gateway.close(request.payment_no)

    refund_no = f"RF{secrets.token_hex(8)}"
    refund = gateway.refund(
        RefundRequest(
            refund_no=refund_no,
            payment_no=request.payment_no,
            gateway_trade_no=queried.gateway_trade_no,
            refund_fen=1000,
            total_fen=1234,
            reason="locker fault",
        )
    )
    assert (refund.state, refund.amount_fen) == (RefundState.PROCESSING, 1000)
    assert gateway.query_refund(refund_no, payment_no=request.payment_no).state is RefundState.PROCESSING
    sandbox.control(f"wallyt/refunds/{refund_no}/settle", json={"status": "SUCCESS"})
    settled = gateway.query_refund(refund_no, payment_no=request.payment_no)
    assert (settled.state, settled.amount_fen, settled.gateway_refund_id) == (
        RefundState.SUCCEEDED,
        1000,
        refund.gateway_refund_id,
    )
    assert gateway.query(request.payment_no).state is TradeState.SUCCEEDED  # REFUND: it was paid


def test_close_unpaid_and_unknown(sandbox: Any, receiver: Receiver) -> None:
    gateway = make_gateway(sandbox, receiver)
    request = create(gateway)

    gateway.close(request.payment_no)
    assert gateway.query(request.payment_no).state is TradeState.CLOSED
    with pytest.raises(TradeNotFound):
        gateway.query(f"WL{secrets.token_hex(8)}")


@pytest.mark.parametrize("kind", ["bad_signature", "malformed", "http_500", "timeout"])
def test_faults_are_unavailable(sandbox: Any, receiver: Receiver, kind: str) -> None:
    gateway = make_gateway(sandbox, receiver)
    request = create(gateway)
    sandbox.fault("wallyt.query", kind, ms=4000)

    with pytest.raises(GatewayUnavailable):
        gateway.query(request.payment_no)


def test_bad_notification_signature_is_refused_then_retried(sandbox: Any, receiver: Receiver) -> None:
    gateway = make_gateway(sandbox, receiver)
    request = create(gateway)
    sandbox.fault("wallyt.notify", "bad_signature")

    sandbox.control(f"wallyt/transactions/{request.payment_no}/pay", json={})
    first, second = receiver.wait(2, timeout=20)

    assert isinstance(first, SignatureInvalid)
    assert isinstance(second, Notification) and second.trade is not None
    assert second.trade.state is TradeState.SUCCEEDED
