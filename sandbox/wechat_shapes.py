# ruff: noqa: RUF001  (Chinese protocol text uses full-width punctuation)
"""WeChat Pay v3 wire shapes of sandbox records (query answer, refund answer, refund notification).

Pure functions: a test or benchmark can build the exact dicts the sandbox sends and feed them to
`wechat_crypto.build_transaction_notification` / `build_refund_notification`.
"""

from __future__ import annotations

from typing import Any

from .state import Refund, Trade, rfc3339

STATE_DESC = {
    "SUCCESS": "支付成功",
    "REFUND": "转入退款",
    "NOTPAY": "订单未支付",
    "CLOSED": "订单已关闭",
    "PAYERROR": "支付失败，请重新下单支付",
}
USER_RECEIVED_ACCOUNT = "支付用户零钱"


def transaction(t: Trade, state: str) -> dict[str, Any]:
    """Query answer / TRANSACTION.SUCCESS plaintext. Unpaid trades omit the payment-only fields."""
    paid = t.success_time is not None
    out: dict[str, Any] = {"appid": t.appid, "mchid": t.mchid, "out_trade_no": t.out_trade_no}
    if paid or state == "PAYERROR":
        out["transaction_id"] = t.transaction_id
        out["trade_type"] = t.trade_type
    out["trade_state"] = state
    out["trade_state_desc"] = STATE_DESC[state]
    if paid:
        out["bank_type"] = t.extra.get("bank_type", "OTHERS")
    out["attach"] = t.attach
    if paid:
        out["success_time"] = rfc3339(t.success_time)
    if t.openid:
        out["payer"] = {"openid": t.openid}
    if paid:
        out["amount"] = {"total": t.amount, "payer_total": t.amount, "currency": "CNY", "payer_currency": "CNY"}
    else:
        out["amount"] = {"total": t.amount, "currency": "CNY", "payer_currency": "CNY"}
    out["promotion_detail"] = []
    return out


def refund(r: Refund) -> dict[str, Any]:
    """Answer of POST /v3/refund/domestic/refunds and GET .../refunds/{out_refund_no}."""
    out: dict[str, Any] = {
        "refund_id": r.refund_id,
        "out_refund_no": r.out_refund_no,
        "transaction_id": r.transaction_id,
        "out_trade_no": r.out_trade_no,
        "channel": r.extra.get("channel", "ORIGINAL"),
        "user_received_account": r.extra.get("user_received_account", USER_RECEIVED_ACCOUNT),
    }
    if r.success_time:
        out["success_time"] = rfc3339(r.success_time)
    out.update(
        {
            "create_time": rfc3339(r.created_at),
            "status": r.status,
            "funds_account": r.extra.get("funds_account", "UNSETTLED"),
            "amount": {
                "total": r.total,
                "refund": r.amount,
                "from": [],
                "payer_total": r.total,
                "payer_refund": r.amount,
                "settlement_refund": r.amount,
                "settlement_total": r.total,
                "discount_refund": 0,
                "currency": "CNY",
                "refund_fee": 0,
            },
            "promotion_detail": [],
        }
    )
    return out


def refund_notification(r: Refund, mchid: str) -> dict[str, Any]:
    """REFUND.* plaintext (PROTOCOLS A.7): note `refund_status`, not `status`."""
    out: dict[str, Any] = {
        "mchid": mchid,
        "out_trade_no": r.out_trade_no,
        "transaction_id": r.transaction_id,
        "out_refund_no": r.out_refund_no,
        "refund_id": r.refund_id,
        "refund_status": r.status,
    }
    if r.success_time:
        out["success_time"] = rfc3339(r.success_time)
    out["user_received_account"] = r.extra.get("user_received_account", USER_RECEIVED_ACCOUNT)
    out["amount"] = {"total": r.total, "refund": r.amount, "payer_total": r.total, "payer_refund": r.amount}
    return out
