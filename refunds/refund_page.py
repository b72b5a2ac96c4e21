"""What a refund's admin page shows of the gateway's answers: the fields that matter, named, and
every answer as indented JSON with secrets masked.

``Refund.gateway_answers`` keeps the last ten answers (refund call, queries, notifications), each
``{"state": <ours>, **<the gateway's fields>}``; the page shows the gateway's fields only (``state`` is
ours, shown as the refund's status), keys in alphabetical order, times in ``TIME_ZONE``. Field names
per gateway (PROTOCOLS A.11, B, C):
WeChat ``refund_id``, ``status``, ``amount{refund,total,payer_refund}``, ``create_time``,
``success_time``; Alipay (no refund id of its own: a refund is known by our ``out_request_no``)
``fund_change``, ``refund_status``, ``refund_fee`` (total refunded so far, yuan), ``send_back_fee``,
``refund_amount``, ``gmt_refund_pay``; Wallyt ``refund_id[_n]``, ``refund_status_n``,
``refund_fee[_n]`` (fen), ``total_fee``, ``refund_time_n``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from core.admin import time_text
from core.logging import masked
from core.money import format_yuan, parse_yuan
from payments.models import GATEWAY_LABELS
from refunds.models import Refund

OURS = "state"  # the key our code adds to each stored answer (refunds.services)
# Alipay and Wallyt send times without a zone: China Standard Time (PROTOCOLS B, C); WeChat RFC 3339
GATEWAY_ZONE = timezone(timedelta(hours=8))
NEVER_SENT = (Refund.Status.REQUESTED, Refund.Status.APPROVED, Refund.Status.REJECTED)


def gateway_time(value: Any) -> datetime | None:
    """A time as a gateway writes it -> an aware datetime, or ``None`` if it is not one: WeChat
    ``2026-11-30T10:16:53+08:00``, Alipay ``2026-11-30 10:16:53`` (``.320`` milliseconds in
    ``gmt_refund``), Wallyt ``20261130101653``; the last two in China Standard Time."""
    text = str(value or "").strip()
    try:
        if len(text) == 14 and text.isdigit():
            parsed = datetime.strptime(text, "%Y%m%d%H%M%S")
        else:
            parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=GATEWAY_ZONE)


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
    def name(self) -> str:
        return GATEWAY_LABELS.get(self.gateway, self.gateway)

    @property
    def never_sent(self) -> bool:
        return not self.answers and self.refund.status in NEVER_SENT

    @property
    def refund_id_text(self) -> str:
        found = self.refund.gateway_refund_id or self._pick("refund_id")
        if found:
            return str(found)
        if self.gateway == "wallet":
            return "none: a wallet refund never leaves this system"
        if self.never_sent:
            return f"none: not sent to {self.name}"
        if self.gateway == "alipay":
            trade = self._pick("trade_no") or self.refund.payment.gateway_trade_no
            return (
                f"none: Alipay gives a refund no number of its own; it knows this one by our "
                f"out_request_no {self.refund.refund_no} on trade {trade or '-'}"
            )
        return "not given yet"

    @property
    def state_text(self) -> str:
        status = self.refund.get_status_display()
        if self.gateway == "wallet":
            return f"{status}: no gateway (a wallet refund is credited to the wallet here)"
        if self.never_sent:
            why = {
                Refund.Status.REQUESTED: "awaiting a decision",
                Refund.Status.APPROVED: "approved, about to be sent",
                Refund.Status.REJECTED: "rejected, never sent",
            }[self.refund.status]
            return f"not sent to {self.name} ({why})"
        if not self.answers:
            return f"{status}: sent, no answer from {self.name} yet"
        ours = Refund.Status(self.latest[OURS]).label if self.latest.get(OURS) in Refund.Status.values else status
        if self.gateway == "alipay":
            word = self._alipay_word()
        elif self.gateway == "wallyt":  # its "status" is the transport's ("0"), the refund's is numbered
            word = self._pick("refund_status")
        else:
            word = self._pick("status", "refund_status")
        return f"{ours}: {self.name} says {word}" if word else str(ours)

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
        if self.gateway == "wallet":
            return f"{ours}, credited to the wallet"
        return f"{text} ({ours})" if text else f"none given ({ours})"

    @property
    def times_text(self) -> str:
        keys = {
            "wechat": (("create_time", "created"), ("success_time", "succeeded")),
            "alipay": (("gmt_refund_pay", "paid back"), ("gmt_refund", "refunded")),
            "wallyt": (("refund_time", "refund time"),),
        }.get(self.gateway, ())
        parts = []
        for key, label in keys:
            value = self._pick(key)
            if value:
                at = gateway_time(value)
                parts.append(f"{label} {time_text(at) if at else value}")
        return ", ".join(parts) or "-"

    @property
    def answers_json(self) -> str:
        """The gateway's answers, latest first: its own fields only, in alphabetical order, secrets masked."""
        theirs = [{k: v for k, v in answer.items() if k != OURS} for answer in reversed(self.answers)]
        return json.dumps(masked(theirs), ensure_ascii=False, indent=2, sort_keys=True)


def gateway_answer(refund: Refund) -> GatewayAnswer:
    answers = [a for a in refund.gateway_answers or [] if isinstance(a, dict)]
    return GatewayAnswer(refund=refund, gateway=refund.payment.gateway, answers=answers)
