"""WeChat notifications we sign and encrypt ourselves with the published platform key (public-key mode)."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.errors import NotificationInvalid, SignatureInvalid
from payments.gateways.base import RefundState, TradeState
from payments.gateways.trust import FieldMismatch, check_trade, trade_expectations
from payments.gateways.wechat import WeChatGateway

from .test_wechat_http import APIV3_KEY, APPID, MCHID, PLATFORM_KEY, PUBLIC_KEY_ID, TRADE, gateway_for

NOW = 1700000000


def notification(
    event_type: str, resource: dict[str, Any], *, key: str = APIV3_KEY, serial: str = PUBLIC_KEY_ID, ts: int = NOW
) -> tuple[dict[str, str], bytes]:
    nonce = secrets.token_hex(6)
    associated = "transaction" if event_type.startswith("TRANSACTION") else "refund"
    ciphertext = AESGCM(key.encode()).encrypt(nonce.encode(), json.dumps(resource).encode(), associated.encode())
    envelope = {
        "id": f"EV-{secrets.token_hex(8)}",
        "create_time": "2023-11-15T06:13:20+08:00",
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": "支付成功",
        "resource": {
            "original_type": associated,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(ciphertext).decode(),
            "associated_data": associated,
            "nonce": nonce,
        },
    }
    body = json.dumps(envelope, ensure_ascii=False).encode()
    header_nonce = secrets.token_hex(16)
    message = f"{ts}\n{header_nonce}\n{body.decode()}\n".encode()
    signature = PLATFORM_KEY.sign(message, padding.PKCS1v15(), hashes.SHA256())
    headers = {
        "Wechatpay-Timestamp": str(ts),
        "Wechatpay-Nonce": header_nonce,
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature": base64.b64encode(signature).decode(),
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }
    return headers, body


@pytest.fixture
def gateway() -> WeChatGateway:
    return gateway_for("http://127.0.0.1:9", clock=lambda: NOW)  # never contacted: public-key mode needs no I/O


def test_transaction_success_maps_to_trade_status(gateway: WeChatGateway) -> None:
    headers, body = notification("TRANSACTION.SUCCESS", TRADE)

    parsed = gateway.parse_notification(headers, body)

    assert parsed.event_type == "TRANSACTION.SUCCESS" and parsed.event_id == json.loads(body)["id"]
    assert parsed.refund is None and parsed.trade is not None
    trade = parsed.trade
    assert (trade.payment_no, trade.state, trade.amount_fen) == ("P20300102001", TradeState.SUCCEEDED, 1234)
    assert (trade.app_id, trade.merchant_id, trade.gateway_trade_no) == (APPID, MCHID, TRADE["transaction_id"])
    assert trade.paid_at == datetime(2030, 1, 2, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "expected"),
    [("SUCCESS", RefundState.SUCCEEDED), ("CLOSED", RefundState.FAILED), ("ABNORMAL", RefundState.ABNORMAL)],
)
def test_refund_events_map_to_refund_status(gateway: WeChatGateway, status: str, expected: RefundState) -> None:
    resource = {
        "mchid": MCHID,
        "out_trade_no": "P1",
        "transaction_id": "42000",
        "out_refund_no": "R1",
        "refund_id": "50000",
        "refund_status": status,
        "success_time": "2030-01-02T11:00:00+08:00",
        "amount": {"total": 1234, "refund": 1000, "payer_total": 1234, "payer_refund": 1000},
    }
    headers, body = notification(f"REFUND.{status}", resource)

    parsed = gateway.parse_notification(headers, body)

    assert parsed.trade is None and parsed.refund is not None
    assert (parsed.refund.refund_no, parsed.refund.state, parsed.refund.amount_fen) == ("R1", expected, 1000)
    assert parsed.refund.merchant_id == MCHID and parsed.refund.gateway_refund_id == "50000"


@pytest.mark.parametrize(
    "change",
    [{"mchid": "1900000999"}, {"appid": "wx0000000000000000"}],
    ids=["foreign-mchid", "foreign-appid"],
)
def test_foreign_identity_is_refused_by_the_checks(gateway: WeChatGateway, change: dict[str, str]) -> None:
    headers, body = notification("TRANSACTION.SUCCESS", {**TRADE, **change})
    trade = gateway.parse_notification(headers, body).trade

    with pytest.raises(FieldMismatch) as refused:
        check_trade(gateway.checks, trade, ours(gateway))
    assert refused.value.details["wire"].split(" / ")[0] == next(iter(change))


@pytest.mark.parametrize("missing", ["mchid", "appid"])
def test_transaction_without_identity_is_refused_by_the_checks(gateway: WeChatGateway, missing: str) -> None:
    headers, body = notification("TRANSACTION.SUCCESS", {k: v for k, v in TRADE.items() if k != missing})
    trade = gateway.parse_notification(headers, body).trade

    with pytest.raises(FieldMismatch, match="absent"):
        check_trade(gateway.checks, trade, ours(gateway))


def test_partner_mode_notification_is_never_ours(gateway: WeChatGateway) -> None:
    headers, body = notification("TRANSACTION.SUCCESS", {**TRADE, "sp_mchid": MCHID})

    with pytest.raises(NotificationInvalid, match="service provider"):
        gateway.parse_notification(headers, body)


def ours(gateway: WeChatGateway) -> dict:
    return trade_expectations(
        payment_no=TRADE["out_trade_no"],
        payment_gateway="wechat",
        amount_fen=TRADE["amount"]["total"],
        identity=gateway.identity(),
    )


def test_unknown_public_key_id_is_signature_invalid(gateway: WeChatGateway) -> None:
    headers, body = notification("TRANSACTION.SUCCESS", TRADE, serial="PUB_KEY_ID_0000000000000000000000000999")

    with pytest.raises(SignatureInvalid):
        gateway.parse_notification(headers, body)


def test_resource_encrypted_with_another_key_is_signature_invalid(gateway: WeChatGateway) -> None:
    headers, body = notification("TRANSACTION.SUCCESS", TRADE, key="another-apiv3-key-of-32-bytes!!!")

    with pytest.raises(SignatureInvalid):
        gateway.parse_notification(headers, body)


def test_stale_and_fresh_edges(gateway: WeChatGateway) -> None:
    fresh_headers, fresh_body = notification("TRANSACTION.SUCCESS", TRADE, ts=NOW - 300)
    stale_headers, stale_body = notification("TRANSACTION.SUCCESS", TRADE, ts=NOW - 301)

    assert gateway.parse_notification(fresh_headers, fresh_body).trade is not None
    with pytest.raises(NotificationInvalid, match="stale"):
        gateway.parse_notification(stale_headers, stale_body)


def test_unknown_trade_state_is_invalid(gateway: WeChatGateway) -> None:
    headers, body = notification("TRANSACTION.SUCCESS", {**TRADE, "trade_state": "WHATEVER"})

    with pytest.raises(NotificationInvalid):
        gateway.parse_notification(headers, body)


def test_non_utf8_body_is_invalid(gateway: WeChatGateway) -> None:  # the size limit is the view's (webhooks)
    headers, _ = notification("TRANSACTION.SUCCESS", TRADE)

    with pytest.raises(NotificationInvalid):
        gateway.parse_notification(headers, b"\xff\xfe")


def test_missing_headers_are_signature_invalid(gateway: WeChatGateway) -> None:
    _, body = notification("TRANSACTION.SUCCESS", TRADE)

    with pytest.raises(SignatureInvalid):
        gateway.parse_notification({}, body)
