"""State shared by the three fake gateways (one lock guards everything), kept in memory and written through to
the data folder's database (`sandbox.persist`) on every change, so that a restart forgets nothing.

Code that changes a trade or a refund calls `Store.save_trade` / `save_refund` (under the lock) afterwards;
new records go through `add_trade` / `add_refund`, bill files through `put_blob`."""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .persist import Persist

CST = dt.timezone(dt.timedelta(hours=8), "CST")


def now_cst() -> dt.datetime:
    return dt.datetime.now(CST).replace(microsecond=0)


def rfc3339(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(CST).strftime("%Y-%m-%dT%H:%M:%S+08:00")


def parse_time(value: str) -> dt.datetime:
    """Parse RFC3339 / ISO-8601 (naive values are taken as +08:00)."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=CST)
    return parsed.astimezone(CST)


@dataclass
class Trade:
    gateway: str  # wechat | alipay | wallyt
    out_trade_no: str
    transaction_id: str
    amount: int  # fen
    trade_type: str  # JSAPI/NATIVE/MWEB (wechat), FAST_INSTANT_TRADE_PAY/QUICK_WAP_PAY, pay.weixin.jspay
    description: str
    notify_url: str
    state: str = "NOTPAY"  # NOTPAY | SUCCESS | CLOSED | PAYERROR  (REFUND is derived)
    appid: str = ""
    mchid: str = ""
    attach: str = ""
    openid: str = ""
    return_url: str = ""
    created_at: dt.datetime = field(default_factory=now_cst)
    success_time: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    sign_mode: str = "cert"  # wechat: cert | pubkey (answers and notifications)
    request: dict[str, Any] = field(default_factory=dict)  # canonical create params (idempotency)
    answer: dict[str, Any] = field(default_factory=dict)  # prepay answer returned again on resubmit
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("created_at", "success_time", "closed_at"):
            data[key] = rfc3339(getattr(self, key))
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trade:
        return cls(**_revived(cls, data, ("created_at", "success_time", "closed_at")))


@dataclass
class Refund:
    gateway: str
    out_refund_no: str
    refund_id: str
    out_trade_no: str
    transaction_id: str
    amount: int  # refund fen
    total: int  # trade total fen
    status: str = "PROCESSING"  # PROCESSING | SUCCESS | ABNORMAL | CLOSED
    reason: str = ""
    notify_url: str = ""
    created_at: dt.datetime = field(default_factory=now_cst)
    success_time: dt.datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("created_at", "success_time"):
            data[key] = rfc3339(getattr(self, key))
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Refund:
        return cls(**_revived(cls, data, ("created_at", "success_time")))


def _revived(cls: type, data: dict[str, Any], times: tuple[str, ...]) -> dict[str, Any]:
    known = {f.name for f in fields(cls)}
    values = {k: v for k, v in data.items() if k in known}
    for key in times:
        values[key] = parse_time(values[key]) if values.get(key) else None
    return values


class Store:
    def __init__(self, persist: Persist | None = None) -> None:
        self.lock = threading.RLock()
        self.persist = persist
        self._seq = itertools.count(1)
        self.trades: dict[tuple[str, str], Trade] = {}
        self.trades_by_txn: dict[tuple[str, str], Trade] = {}
        self.refunds: dict[tuple[str, str], Refund] = {}
        self._blobs: dict[str, tuple[str, bytes]] = {}  # without a database only
        self.bill_adjust: dict[str, Any] = {}  # gateway -> bills.BillAdjust (tests make bills disagree)
        self._load()

    def _load(self) -> None:
        """Everything the previous process of this data folder knew."""
        if self.persist is None:
            return
        for _, data in self.persist.all("trade"):
            trade = Trade.from_json(data)
            self.trades[(trade.gateway, trade.out_trade_no)] = trade
            self.trades_by_txn[(trade.gateway, trade.transaction_id)] = trade
        for key, data in self.persist.all("refund"):
            gateway, _, refund_key = key.partition(" ")
            self.refunds[(gateway, refund_key)] = Refund.from_json(data)
        seq = self.persist.get("meta", "seq") or {}
        self._seq = itertools.count(int(seq.get("next", 1)))

    def reset(self) -> None:
        with self.lock:
            self.trades.clear()
            self.trades_by_txn.clear()
            self.refunds.clear()
            self._blobs.clear()
            self.bill_adjust.clear()
            if self.persist is not None:
                self.persist.clear()

    # ------------------------------------------------------------------ writing through
    def save_trade(self, trade: Trade) -> None:
        if self.persist is not None:
            self.persist.put("trade", f"{trade.gateway} {trade.out_trade_no}", trade.to_json())

    def add_refund(self, refund: Refund, key: str | None = None) -> None:
        """A new refund, under `key` (default: its out_refund_no; Alipay: `out_trade_no|out_request_no`)."""
        key = key or refund.out_refund_no
        self.refunds[(refund.gateway, key)] = refund
        refund.extra["key"] = key
        self.save_refund(refund)

    def save_refund(self, refund: Refund) -> None:
        if self.persist is not None:
            key = refund.extra.get("key") or refund.out_refund_no
            self.persist.put("refund", f"{refund.gateway} {key}", refund.to_json())

    def put_blob(self, token: str, content_type: str, data: bytes) -> None:
        """A bill file to download (`token` in its URL)."""
        if self.persist is not None:
            self.persist.put_blob(token, content_type, data)
        else:
            self._blobs[token] = (content_type, data)

    def get_blob(self, token: str) -> tuple[str, bytes] | None:
        if self.persist is not None:
            return self.persist.get_blob(token)
        return self._blobs.get(token)

    def next_id(self, prefix: str, width: int = 28) -> str:
        """Unique, digit-only id like WeChat's (prefix + date + sequence + random)."""
        seq = next(self._seq)
        if self.persist is not None:
            self.persist.put("meta", "seq", {"next": seq + 1})
        stamp = now_cst().strftime("%Y%m%d")
        body = f"{stamp}{seq:08d}"
        pad = max(0, width - len(prefix) - len(body))
        return prefix + body + "".join(secrets.choice("0123456789") for _ in range(pad))

    def add_trade(self, trade: Trade) -> None:
        self.trades[(trade.gateway, trade.out_trade_no)] = trade
        self.trades_by_txn[(trade.gateway, trade.transaction_id)] = trade
        self.save_trade(trade)

    def trade(self, gateway: str, out_trade_no: str | None = None, transaction_id: str | None = None) -> Trade | None:
        if out_trade_no:
            return self.trades.get((gateway, out_trade_no))
        if transaction_id:
            return self.trades_by_txn.get((gateway, transaction_id))
        return None

    def refunds_of(self, trade: Trade) -> list[Refund]:
        return [r for r in self.refunds.values() if r.gateway == trade.gateway and r.out_trade_no == trade.out_trade_no]

    def refunded_total(self, trade: Trade, *, include_processing: bool = True) -> int:
        ok = {"SUCCESS", "PROCESSING", "ABNORMAL"} if include_processing else {"SUCCESS"}
        return sum(r.amount for r in self.refunds_of(trade) if r.status in ok)

    def gateway_records(self, gateway: str) -> tuple[list[Trade], list[Refund]]:
        """All trades and refunds of one gateway (for bills); the caller holds `lock`."""
        trades = [t for t in self.trades.values() if t.gateway == gateway]
        refunds = [r for r in self.refunds.values() if r.gateway == gateway]
        return trades, refunds

    def derived_state(self, trade: Trade) -> str:
        """`trade.state`, but `REFUND` for a paid trade with any refund that is not CLOSED (WeChat, Wallyt)."""
        if trade.state == "SUCCESS":
            with self.lock:
                if any(r.status != "CLOSED" for r in self.refunds_of(trade)):
                    return "REFUND"
        return trade.state

    def _unpaid(self, gateway: str, out_trade_no: str, action: str) -> Trade:
        t = self.trade(gateway, out_trade_no)
        if t is None:
            raise LookupError(f"no {gateway} transaction {out_trade_no}")
        if t.state not in ("NOTPAY", "PAYERROR"):
            raise ValueError(f"transaction {out_trade_no} is {t.state}, cannot {action}")
        return t

    def mark_paid(self, gateway: str, out_trade_no: str, success_time: str | None = None) -> Trade:
        """Pay an unpaid trade (cashier/control `pay`); callers hold `lock` to add their gateway's fields."""
        with self.lock:
            t = self._unpaid(gateway, out_trade_no, "pay")
            t.state = "SUCCESS"
            t.success_time = parse_time(success_time) if success_time else now_cst()
            self.save_trade(t)
            return t

    def fail_unpaid(self, gateway: str, out_trade_no: str) -> Trade:
        """Mark an unpaid trade PAYERROR (cashier/control `fail`); no notification."""
        with self.lock:
            t = self._unpaid(gateway, out_trade_no, "fail")
            t.state = "PAYERROR"
            self.save_trade(t)
            return t

    def close_unpaid(self, gateway: str, out_trade_no: str) -> Trade:
        """Close an unpaid trade gateway-side (control API `expire`)."""
        with self.lock:
            t = self._unpaid(gateway, out_trade_no, "expire")
            t.state = "CLOSED"
            t.closed_at = now_cst()
            self.save_trade(t)
            return t

    def settle_refund(
        self,
        gateway: str,
        out_refund_no: str,
        status: str,
        *,
        success_time: str | None = None,
        only_processing: bool = False,
    ) -> Refund | None:
        """Move a PROCESSING/ABNORMAL refund to `status`; None when `only_processing` and it is not PROCESSING.

        Callers that build a notification from the settled refund hold `lock` around this call.
        """
        if status not in ("SUCCESS", "ABNORMAL", "CLOSED"):
            raise ValueError("status must be SUCCESS, ABNORMAL or CLOSED")
        with self.lock:
            r = self.refunds.get((gateway, out_refund_no))
            if r is None:
                raise LookupError(f"no {gateway} refund {out_refund_no}")
            if only_processing and r.status != "PROCESSING":
                return None
            if r.status in ("SUCCESS", "CLOSED"):
                raise ValueError(f"refund {out_refund_no} is already {r.status}")
            r.status = status
            if status == "SUCCESS":
                r.success_time = parse_time(success_time) if success_time else now_cst()
            r.extra.pop("settle_due", None)
            self.save_refund(r)
            return r
