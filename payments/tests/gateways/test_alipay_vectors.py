"""Alipay known-answer tests: a real production notify and a real signed sync response (alipay-sdk-nodejs-all)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from alipay.exceptions import AliPayValidationError

from core.errors import GatewayUnavailable, NotificationInvalid, SignatureInvalid
from payments.gateways.alipay import AlipayConfig, AlipayGateway
from payments.gateways.base import TradeState
from payments.gateways.trust import FieldMismatch, check_trade, trade_expectations

from .conftest import vector_json, vector_text

NOTIFY = vector_json("alipay_notify_official.json")
FORM: dict[str, str] = NOTIFY["form"]
SYNC = vector_json("alipay_sync_response_official.json")


def gateway(
    *, app_id: str = FORM["app_id"], public_key: str = NOTIFY["alipay_public_key"], seller_id: str = ""
) -> AlipayGateway:
    return AlipayGateway(
        AlipayConfig(
            app_id=app_id,
            seller_id=seller_id,
            app_private_key_pem=vector_text("fzlee_app_app_private_key.pem"),
            alipay_public_key_pem=public_key,
            gateway_url="http://127.0.0.1:9/gateway.do",
            notify_url="https://merchant.example/notify/alipay/",
        )
    )


def test_official_notify_verifies_and_maps() -> None:
    parsed = gateway().parse_notification({}, urlencode(FORM).encode())

    assert parsed.event_id == FORM["notify_id"] and parsed.event_type == "trade_status_sync"
    assert parsed.refund is None and parsed.trade is not None
    trade = parsed.trade
    assert (trade.payment_no, trade.state, trade.amount_fen) == (FORM["out_trade_no"], TradeState.SUCCEEDED, 10)
    assert (trade.gateway_trade_no, trade.app_id, trade.seller_id) == (
        FORM["trade_no"],
        FORM["app_id"],
        FORM["seller_id"],
    )
    assert trade.gateway_state == "TRADE_SUCCESS" and trade.paid_at is not None
    assert trade.paid_at.isoformat() == "2019-08-15T15:56:24+08:00"


@pytest.mark.parametrize("name", sorted(FORM))
def test_changing_any_single_field_fails(name: str) -> None:
    value = FORM[name]
    changed = ("R" + value[1:]) if name == "sign" else ("RSA" if name == "sign_type" else value + "1")
    form = {**FORM, name: changed}

    with pytest.raises(SignatureInvalid):
        gateway().parse_notification({}, urlencode(form).encode())


@pytest.mark.parametrize("name", sorted(set(FORM) - {"sign_type"}))
def test_dropping_any_field_fails(name: str) -> None:
    form = {k: v for k, v in FORM.items() if k != name}

    with pytest.raises(SignatureInvalid):
        gateway().parse_notification({}, urlencode(form).encode())


def test_an_added_field_fails() -> None:
    with pytest.raises(SignatureInvalid):
        gateway().parse_notification({}, urlencode({**FORM, "passback_params": ""}).encode())


def test_notify_for_another_app_id_is_refused_by_the_checks_after_verification() -> None:
    other = gateway(app_id="2021000000000000", seller_id=FORM["seller_id"])
    trade = other.parse_notification({}, urlencode(FORM).encode()).trade  # it verifies: Alipay signed it
    expected = trade_expectations(
        payment_no=FORM["out_trade_no"], payment_gateway="alipay", amount_fen=10, identity=other.identity()
    )

    with pytest.raises(FieldMismatch, match="app_id"):
        check_trade(other.checks, trade, expected)


def test_official_notify_passes_the_checks_for_its_own_app_and_seller() -> None:
    ours = gateway(seller_id=FORM["seller_id"])
    trade = ours.parse_notification({}, urlencode(FORM).encode()).trade

    check_trade(
        ours.checks,
        trade,
        trade_expectations(
            payment_no=FORM["out_trade_no"], payment_gateway="alipay", amount_fen=10, identity=ours.identity()
        ),
    )


def test_repeated_field_is_rejected() -> None:
    body = urlencode(FORM) + "&trade_status=TRADE_CLOSED"

    with pytest.raises(NotificationInvalid):
        gateway().parse_notification({}, body.encode())


def test_verify_return_uses_the_same_rules() -> None:
    assert gateway().verify_return(dict(FORM)).payment_no == FORM["out_trade_no"]
    with pytest.raises(SignatureInvalid):
        gateway().verify_return({**FORM, "total_amount": "0.01"})


def test_notification_reply_is_plain_text() -> None:
    ok, failed = gateway().notification_reply(ok=True), gateway().notification_reply(ok=False, message="x")

    assert (ok.status, ok.body, failed.status, failed.body) == (200, b"success", 200, b"fail")


def sync_gateway() -> AlipayGateway:
    return gateway(public_key=vector_text("alipaynode_alipay-public-key.pem"))


def test_official_sync_response_verifies_with_the_sdk() -> None:
    client = sync_gateway().client

    answer = client._verify_and_return_sync_response(SYNC["raw"], SYNC["method_response_key"])

    assert answer == {"code": "10000", "msg": "Success", "file_id": "CAxAToWB1JsAAAAAAAAAAAAADgSLAQBr"}


def test_tampered_sync_response_fails_and_maps_to_unavailable() -> None:
    tampered = SYNC["raw"].replace("CAxAToWB1", "CAxAToWB2")
    client = sync_gateway().client

    with pytest.raises(AliPayValidationError):
        client._verify_and_return_sync_response(tampered, SYNC["method_response_key"])
    with pytest.raises(GatewayUnavailable):
        AlipayGateway._call(lambda: client._verify_and_return_sync_response(tampered, SYNC["method_response_key"]))
