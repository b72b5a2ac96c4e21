"""WeChatGateway end to end against the local sandbox (sandbox/testing.py), real SDK, real HTTP."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.errors import (
    GatewayUnavailable,
    RefundNotFound,
    SignatureInvalid,
    TradeAlreadyPaid,
    TradeNotFound,
    ValidationFailed,
)
from payments.gateways.base import (
    AbnormalRefundDestination,
    AbnormalRefundRequest,
    Notification,
    PrepayRequest,
    RefundRequest,
    RefundState,
    TradeState,
)
from payments.gateways.wechat import WeChatConfig, WeChatGateway

from .conftest import Receiver


def make_gateway(sandbox: Any, receiver: Receiver, *, cert_dir: Path | None = None) -> WeChatGateway:
    creds = sandbox.credentials["wechat"]
    public = cert_dir is None
    config = WeChatConfig(
        appid=creds["appid"],
        mchid=creds["mchid"],
        merchant_serial_no=creds["merchant_serial_no"],
        private_key_pem=sandbox.read("wechat/merchant_private_key.pem"),
        apiv3_key=sandbox.read("wechat/apiv3_key").strip(),
        notify_url=receiver.url,
        api_base=sandbox.base_url,
        public_key_pem=sandbox.read("wechat/platform_public_key.pem") if public else None,
        public_key_id=creds["public_key_id"] if public else None,
        platform_cert_dir=None if public else str(cert_dir),
        timeout=(3, 3),
    )
    gateway = WeChatGateway(config)
    receiver.gateway = gateway
    return gateway


def prepay(product: str, **extra: Any) -> PrepayRequest:
    return PrepayRequest(
        payment_no=f"WX{secrets.token_hex(8)}",
        amount_fen=1234,
        description="locker 12 rental",
        product=product,
        expires_at=datetime.now(UTC) + timedelta(minutes=15),
        notify_url="",
        **extra,
    )


@pytest.mark.parametrize("mode", ["public-key", "certificate"])
def test_pay_notify_query_close_refund(sandbox: Any, receiver: Receiver, tmp_path: Path, mode: str) -> None:
    gateway = make_gateway(sandbox, receiver, cert_dir=tmp_path / "certs" if mode == "certificate" else None)
    request = prepay("jsapi", openid="oSandboxPayer0000000000000000")

    result = gateway.create(request)
    assert result.pay_params is not None and result.pay_params["package"].startswith("prepay_id=")
    assert gateway.query(request.payment_no).state is TradeState.PENDING

    sandbox.control(f"wechat/transactions/{request.payment_no}/pay", json={})
    (paid,) = receiver.wait(1)
    assert isinstance(paid, Notification) and paid.event_type == "TRANSACTION.SUCCESS"
    assert paid.trade is not None
    assert (paid.trade.payment_no, paid.trade.state, paid.trade.amount_fen) == (
        request.payment_no,
        TradeState.SUCCEEDED,
        1234,
    )
    assert paid.trade.merchant_id == gateway.config.mchid and paid.trade.app_id == gateway.config.appid

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
    assert refund.state in (RefundState.PROCESSING, RefundState.SUCCEEDED) and refund.amount_fen == 1000
    if refund.state is RefundState.PROCESSING:
        sandbox.control(f"wechat/refunds/{refund_no}/settle", json={"status": "SUCCESS"})
    assert gateway.query_refund(refund_no, payment_no=request.payment_no).state is RefundState.SUCCEEDED
    notifications = receiver.wait(2)
    refunded = notifications[1]
    assert isinstance(refunded, Notification) and refunded.event_type == "REFUND.SUCCESS"
    assert refunded.refund is not None and refunded.refund.refund_no == refund_no
    assert refunded.refund.state is RefundState.SUCCEEDED


def test_native_and_h5_then_close(sandbox: Any, receiver: Receiver) -> None:
    gateway = make_gateway(sandbox, receiver)
    native, h5 = prepay("native"), prepay("h5", client_ip="203.0.113.9")

    assert gateway.create(native).code_url
    assert gateway.create(h5).h5_url
    gateway.close(native.payment_no)
    gateway.close(native.payment_no)  # closing twice is fine
    assert gateway.query(native.payment_no).state is TradeState.CLOSED


def test_unknown_trade(sandbox: Any, receiver: Receiver) -> None:
    with pytest.raises(TradeNotFound):
        make_gateway(sandbox, receiver).query(f"WX{secrets.token_hex(8)}")


@pytest.mark.parametrize("kind", ["bad_signature", "malformed", "http_500", "timeout"])
def test_faults_are_unavailable(sandbox: Any, receiver: Receiver, kind: str) -> None:
    gateway = make_gateway(sandbox, receiver)
    request = prepay("native")
    gateway.create(request)
    sandbox.fault("wechat.query", kind, ms=4000)

    with pytest.raises(GatewayUnavailable):
        gateway.query(request.payment_no)


def test_bad_notification_signature_is_refused_then_retried(sandbox: Any, receiver: Receiver) -> None:
    gateway = make_gateway(sandbox, receiver)
    request = prepay("native")
    gateway.create(request)
    sandbox.fault("wechat.notify", "bad_signature")

    sandbox.control(f"wechat/transactions/{request.payment_no}/pay", json={})
    first, second = receiver.wait(2, timeout=15)

    assert isinstance(first, SignatureInvalid)
    assert isinstance(second, Notification) and second.trade is not None
    assert second.trade.state is TradeState.SUCCEEDED


@pytest.mark.parametrize("mode", ["public-key", "certificate"])
def test_apply_abnormal_refund_and_refund_unknown(sandbox: Any, receiver: Receiver, tmp_path: Path, mode: str) -> None:
    gateway = make_gateway(sandbox, receiver, cert_dir=tmp_path / "certs" if mode == "certificate" else None)
    request = prepay("native")
    gateway.create(request)
    sandbox.control(f"wechat/transactions/{request.payment_no}/pay", json={})
    refund_no = f"RF{secrets.token_hex(8)}"
    with pytest.raises(RefundNotFound):  # 404 RESOURCE_NOT_EXISTS: it never reached WeChat
        gateway.query_refund(refund_no, payment_no=request.payment_no)
    sent = gateway.refund(
        RefundRequest(
            refund_no=refund_no,
            payment_no=request.payment_no,
            gateway_trade_no=None,
            refund_fen=1234,
            total_fen=1234,
            reason="",
        )
    )
    sandbox.control(f"wechat/refunds/{refund_no}/settle", json={"status": "ABNORMAL"})
    card = AbnormalRefundRequest(
        refund_no=refund_no,
        gateway_refund_id=sent.gateway_refund_id or "",
        destination=AbnormalRefundDestination.USER_BANK_CARD,
        bank_type="CMB_DEBIT",
        bank_account="6225880123456789",
        real_name="李四",
    )
    assert "6225880123456789" not in repr(card) and "李四" not in repr(card)
    with pytest.raises(ValidationFailed):  # the SDK does not check the bank fields: the adapter does
        gateway.apply_abnormal_refund(replace(card, real_name=""))

    applied = gateway.apply_abnormal_refund(card)

    assert (applied.state, applied.refund_no, applied.amount_fen) == (RefundState.PROCESSING, refund_no, 1234)
    assert applied.raw["channel"] == "OTHER_BANKCARD" and applied.raw["user_received_account"].endswith("6789")
