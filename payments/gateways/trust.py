"""The trust boundary: which field of which gateway message is checked against what (DESIGN rule 5).

Each adapter module declares one ``CheckTable`` (``wechat.CHECKS``, ``alipay.CHECKS``,
``wallyt.CHECKS``): the fields of its trade and refund words (``TradeStatus`` / ``RefundStatus``,
which the adapter fills from notifications, query answers, answers to our own calls, Alipay returns
and bill lines) and, for each, what it must equal and in which messages the gateway always sends it.
``check_trade`` / ``check_refund`` apply a table to one word against what we expect (built by the
services from our payment or refund and the gateway's configured identity). Nothing here touches the
ORM or the network.

Rules:

* a field that is present must be one of the expected values, whatever the message;
* a field that is absent is refused in the messages listed in ``Check.required_in`` (the gateway
  always sends it there; its absence means the message is not what it claims to be);
* ``envelope`` checks (signature serial, timestamp window, sign type) are made by the adapter while
  verifying the signature; they are listed here so that one table tells the whole story (README).

A refused word raises ``FieldMismatch`` (naming the field, the gateway's wire name and what it was
compared with) before anything is written.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import PaymentError


class Message(enum.StrEnum):
    """The kinds of gateway messages a word can come from."""

    NOTIFY = "notify"  # an asynchronous notification (webhook)
    QUERY = "query"  # the answer to our query of a trade or refund
    ANSWER = "answer"  # the answer to our own call (a refund request)
    RETURN = "return"  # the payer's browser coming back (Alipay return_url)
    BILL = "bill"  # a line of the daily bill


ALL_MESSAGES = frozenset(Message)


@dataclass(frozen=True)
class Check:
    field: str  # our name: an attribute of TradeStatus / RefundStatus
    wire: str  # the gateway's own name (dotted for nested JSON)
    against: str  # what it is compared with, for people (README, errors)
    required_in: frozenset[Message] = frozenset()  # absent in these messages: refused


@dataclass(frozen=True)
class CheckTable:
    gateway: str
    trade: tuple[Check, ...]
    refund: tuple[Check, ...]
    envelope: tuple[Check, ...] = ()  # made by the adapter while verifying (serial, time window, sign type)

    def fields(self, kind: str) -> tuple[str, ...]:
        return tuple(check.field for check in getattr(self, kind))


@dataclass(frozen=True)
class Identity:
    """Who a gateway's messages must be for: our configured ids ("" where the gateway has none)."""

    app_id: str = ""
    merchant_id: str = ""
    seller_id: str = ""
    sub_app_id: str = ""


class FieldMismatch(PaymentError):
    """A verified gateway message names something that is not ours (or lacks a field it always sends)."""

    code = "field_mismatch"
    http_status = 502

    def __init__(self, check: Check, *, gateway: str, message: Message, got: Any) -> None:
        state = "absent" if got in (None, "") else "not ours"
        super().__init__(
            f"The {gateway} {message} was refused: {check.wire} is {state}.",
            details={"gateway": gateway, "message": str(message), "field": check.field, "wire": check.wire},
        )
        self.check = check
        # for logs and the inbox row, never for API answers: what was received and what it should be
        self.reason = f"{self.message} Received {repr(got)[:80]}; expected {check.against}."


CNY = frozenset({"CNY"})


class _AnyValue(frozenset):
    """Every value: what a field must be when the gateway chose it and we cannot know it (the out_trade_no
    WeChat generates for a Pay Score collection), the word being tied to our trade by another check (its
    ``transaction_id``)."""

    def __contains__(self, item: object) -> bool:
        return True


ANY_VALUE: frozenset = _AnyValue()


def gateway_check(*, required_in: frozenset[Message] = ALL_MESSAGES) -> Check:
    """The word comes from the gateway that the payment or refund was started with."""
    return Check("gateway", "(endpoint / adapter)", "the gateway of our payment or refund", required_in)


def subject_check(kind: str, wire: str) -> Check:
    """The word is about the payment (``kind="trade"``) or refund we asked about; a notification's is the
    one it names (always present: the adapter refuses a word without it)."""
    field, what = ("payment_no", "payment") if kind == "trade" else ("refund_no", "refund")
    return Check(field, wire, f"the {what} we asked about (a notification: the one it names)", ALL_MESSAGES)


def _check(table: Iterable[Check], word: Any, expected: Mapping[str, Collection[Any]], *, gateway: str) -> None:
    message = Message(word.source)
    for check in table:
        got = getattr(word, check.field, None)  # a word that cannot carry the field: absent
        if got is None or got == "":
            if message in check.required_in:
                raise FieldMismatch(check, gateway=gateway, message=message, got=got)
            continue
        allowed = expected.get(check.field)
        if allowed is None:
            raise KeyError(f"nothing to compare {check.field} with")  # a table/expectation mismatch: a bug
        if got not in allowed:
            raise FieldMismatch(check, gateway=gateway, message=message, got=got)


def check_trade(table: CheckTable, trade: Any, expected: Mapping[str, Collection[Any]]) -> None:
    """Refuse a ``TradeStatus`` (raises ``FieldMismatch``) unless every field of ``table.trade`` is ours."""
    _check(table.trade, trade, expected, gateway=table.gateway)


def check_refund(table: CheckTable, refund: Any, expected: Mapping[str, Collection[Any]]) -> None:
    """Refuse a ``RefundStatus`` (raises ``FieldMismatch``) unless every field of ``table.refund`` is ours."""
    _check(table.refund, refund, expected, gateway=table.gateway)


def trade_expectations(
    *, payment_no: str, payment_gateway: str, amount_fen: int, identity: Identity
) -> dict[str, frozenset]:
    """What each trade field must be, for our payment ``payment_no`` of ``amount_fen`` fen started with
    ``payment_gateway``."""
    return {
        "payment_no": frozenset({payment_no}),
        "gateway": frozenset({payment_gateway}),
        "app_id": frozenset({identity.app_id}),
        "auth_app_id": frozenset({identity.app_id}),
        "merchant_id": frozenset({identity.merchant_id}),
        "seller_id": frozenset({identity.seller_id}),
        "sub_app_id": frozenset({identity.sub_app_id}),
        "amount_fen": frozenset({amount_fen}),
        "currency": CNY,
    }


def refund_expectations(
    *,
    refund_no: str,
    payment_gateway: str,
    payment_no: str | None,
    payment_amount_fen: int,
    refund_fen: int,
    refunded_totals: frozenset[int],
    identity: Identity,
    gateway_trade_no: str = "",
) -> dict[str, frozenset]:
    """What each refund field must be. ``refunded_totals``: the trade's cumulative refunded amounts the
    gateway may report with this refund (see ``cumulative_refund_totals``). ``payment_no`` None: the gateway
    knows the trade by ``gateway_trade_no`` only (a WeChat Pay Score collection, whose out_trade_no WeChat
    generated): any out_trade_no, and the trade id must be ``gateway_trade_no``. ``gateway_trade_no`` ""
    (not known to us): any."""
    if payment_no is None and not gateway_trade_no:
        raise ValueError("a trade known by its gateway id only needs that id")
    return {
        "refund_no": frozenset({refund_no}),
        "gateway": frozenset({payment_gateway}),
        "app_id": frozenset({identity.app_id}),
        "merchant_id": frozenset({identity.merchant_id}),
        "seller_id": frozenset({identity.seller_id}),
        "payment_no": ANY_VALUE if payment_no is None else frozenset({payment_no}),
        "gateway_trade_no": frozenset({gateway_trade_no}) if gateway_trade_no else ANY_VALUE,
        "amount_fen": frozenset({refund_fen}),
        "total_fen": frozenset({payment_amount_fen}),
        "refunded_total_fen": refunded_totals,
        "currency": CNY,
    }


MAX_OPEN_REFUNDS_FOR_SUMS = 16


def cumulative_refund_totals(*, this_fen: int, others_fen: Iterable[int]) -> frozenset[int]:
    """The cumulative refunded amounts a gateway may report together with one refund (Alipay ``refund_fee``
    is "the trade's total refunded so far", PROTOCOLS F.5): this refund plus any subset of the trade's
    other refunds sent to the gateway (settled or not here: the gateway may have executed them in
    another order than we did, and its words may arrive in any order).

    ``others_fen`` beyond ``MAX_OPEN_REFUNDS_FOR_SUMS`` items are taken as a contiguous range instead of
    subset sums (still bounded by what we sent)."""
    others = list(others_fen)
    if len(others) > MAX_OPEN_REFUNDS_FOR_SUMS:
        return frozenset(range(this_fen, this_fen + sum(others) + 1))
    sums = {0}
    for amount in others:
        sums |= {s + amount for s in sums}
    return frozenset(this_fen + s for s in sums)


def markdown_table(tables: Iterable[CheckTable]) -> str:
    """The README's table: one row per (word, field), one column per gateway: the gateway's field, what it
    must equal, and in which messages its absence is refused ("-": the gateway does not send it)."""
    tables = list(tables)
    rows: dict[tuple[str, str], dict[str, Check]] = {}
    for table in tables:
        for kind in ("envelope", "trade", "refund"):
            for check in getattr(table, kind):
                rows.setdefault((kind, check.field), {})[table.gateway] = check
    lines = [
        "| word | field | " + " | ".join(t.gateway for t in tables) + " |",
        "|---|---|" + "---|" * len(tables),
    ]
    order = {"envelope": 0, "trade": 1, "refund": 2}
    for (kind, field), by_gateway in sorted(rows.items(), key=lambda item: order[item[0][0]]):
        cells = [_cell(by_gateway[t.gateway]) if t.gateway in by_gateway else "-" for t in tables]
        lines.append(f"| {kind} | `{field}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(check: Check) -> str:
    if check.required_in == ALL_MESSAGES:
        need = "always"
    elif check.required_in:
        need = "needed in " + ", ".join(sorted(check.required_in))
    else:
        need = "when sent"
    return f"`{check.wire}` = {check.against}; {need}"
