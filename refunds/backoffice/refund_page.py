"""What a refund's admin page shows of the gateway's answers: the fields that matter, named, and
every answer as indented JSON with secrets masked.

``Refund.gateway_answers`` keeps the last ten answers (refund call, queries, notifications), each
``{"state": <ours>, **<the gateway's fields>}``. Field names per gateway (PROTOCOLS A.11, B, C):
WeChat ``refund_id``, ``status``, ``amount{refund,total,payer_refund}``, ``create_time``,
``success_time``; Alipay (no refund id of its own: a refund is known by our ``out_request_no``)
``fund_change``, ``refund_status``, ``refund_fee`` (total refunded so far, yuan), ``send_back_fee``,
``refund_amount``, ``gmt_refund_pay``; Wallyt ``refund_id[_n]``, ``refund_status_n``,
``refund_fee[_n]`` (fen), ``total_fee``, ``refund_time_n``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from config.logging import REDACTED, is_secret_name
from config.money import format_yuan, parse_yuan
from payments.models import GATEWAY_LABELS
from refunds.models import Refund


def _secret(key: str) -> bool:
    """Keys the logs redact (key, token, secret, ...) and every signature (``sign``, ``paySign``)."""
    return is_secret_name(key) or key.lower().endswith("sign")


def masked(value: Any) -> Any:
    """A copy with the value of every key that names a secret (sign, key, token, ...) replaced."""
    if isinstance(value, dict):
        return {k: REDACTED if _secret(str(k)) else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def _wallyt_index(answer: dict, refund_no: str) -> str:
    """Wallyt's refund query numbers its refunds: ``out_refund_no_0``, ... -> the suffix of ours."""
    for key, value in answer.items():
        if key.startswith("out_refund_no_") and value == refund_no:
            return "_" + key.rsplit("_", 1)[1]
    return ""


def _yuan_text(value: Any) -> str:
    try:
        return format_yuan(parse_yuan(str(value)))
    except (ValueError, InvalidOperation):
        return str(value)


def _fen_text(value: Any) -> str:
    try:
        return format_yuan(int(Decimal(str(value))))
    except (ValueError, InvalidOperation):
        return str(value)


@dataclass(frozen=True)
class GatewayAnswer:
    refund: Refund
    gateway: str
    answers: list[dict]

    @property
    def latest(self) -> dict:
        return self.answers[-1] if self.answers else {}

    def _pick(self, *keys: str) -> Any:
        """The newest answer's value of the first key that any answer has (newest answers first)."""
        for answer in reversed(self.answers):
            suffix = _wallyt_index(answer, self.refund.refund_no) if self.gateway == "wallyt" else ""
            for key in keys:
                for name in (f"{key}{suffix}", key):
                    if answer.get(name) not in (None, ""):
                        return answer[name]
        return None

    @property
    def refund_id_text(self) -> str:
        found = self.refund.gateway_refund_id or self._pick("refund_id")
        if found:
            return str(found)
        if self.gateway == "alipay":
            trade = self._pick("trade_no") or self.refund.payment.gateway_trade_no
            return (
                f"none: Alipay gives a refund no number of its own; it knows this one by our "
                f"out_request_no {self.refund.refund_no} on trade {trade or '-'}"
            )
        if self.gateway == "wallet":
            return "none: a wallet refund never leaves this system"
        return "not given yet"

    @property
    def state_text(self) -> str:
        if not self.answers:
            return f"{self.refund.status} (no answer from {GATEWAY_LABELS.get(self.gateway, self.gateway)} yet)"
        ours = self.latest.get("state") or self.refund.status
        if self.gateway == "alipay":
            word = self._alipay_word()
        elif self.gateway == "wallyt":  # its "status" is the transport's ("0"), the refund's is numbered
            word = self._pick("refund_status")
        else:
            word = self._pick("status", "refund_status")
        name = GATEWAY_LABELS.get(self.gateway, self.gateway)
        return f"{ours}: {name} says {word}" if word else str(ours)

    def _alipay_word(self) -> str | None:
        """Alipay has no one refund state: the query's refund_status, the refund call's fund_change,
        or a trade_status_sync notification that carries the refund."""
        latest = self.latest
        if latest.get("refund_status"):
            return f"refund_status {latest['refund_status']}"
        if latest.get("fund_change"):
            moved = "money moved" if latest["fund_change"] == "Y" else "no money moved yet"
            return f"fund_change {latest['fund_change']} ({moved})"
        if latest.get("trade_status"):
            return f"{latest.get('notify_type') or 'notification'}: trade {latest['trade_status']}, refund settled"
        return None

    @property
    def amounts_text(self) -> str:
        parts: list[str] = []
        amount = self._pick("amount")
        if isinstance(amount, dict):  # WeChat: fen
            if amount.get("refund") is not None:
                total = f" of {_fen_text(amount['total'])}" if amount.get("total") is not None else ""
                parts.append(f"refund {_fen_text(amount['refund'])}{total}")
            if amount.get("payer_refund") is not None:
                parts.append(f"to the payer {_fen_text(amount['payer_refund'])}")
        elif self.gateway == "alipay":
            for key, label in (
                ("refund_amount", "refund"),
                ("send_back_fee", "sent back"),
                ("refund_fee", "refunded so far on the trade"),
            ):
                value = self._pick(key)
                if value not in (None, ""):
                    parts.append(f"{label} {_yuan_text(value)}")
        elif self.gateway == "wallyt":
            value, total = self._pick("refund_fee"), self._pick("total_fee")
            if value not in (None, ""):
                parts.append(f"refund {_fen_text(value)}" + (f" of {_fen_text(total)}" if total else ""))
        text = ", ".join(parts)
        ours = f"ours {format_yuan(self.refund.amount_fen)}"
        return f"{text} ({ours})" if text else f"none given ({ours})"

    @property
    def times_text(self) -> str:
        keys = {
            "wechat": (("create_time", "created"), ("success_time", "succeeded")),
            "alipay": (("gmt_refund_pay", "paid back"), ("gmt_refund", "refunded")),
            "wallyt": (("refund_time", "refund time"),),
        }.get(self.gateway, ())
        parts = [f"{label} {value}" for key, label in keys if (value := self._pick(key))]
        return ", ".join(parts) or "-"

    @property
    def answers_json(self) -> str:
        return json.dumps(masked(list(reversed(self.answers))), ensure_ascii=False, indent=2)


def gateway_answer(refund: Refund) -> GatewayAnswer:
    answers = [a for a in refund.gateway_answers or [] if isinstance(a, dict)]
    return GatewayAnswer(refund=refund, gateway=refund.payment.gateway, answers=answers)
