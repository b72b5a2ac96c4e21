"""Fault injection registry.

A fault is `{target, kind, count, ms, apply}`; `target` is an endpoint name such as
`wechat.pay` (fnmatch patterns like `wechat.*` or `*` work too). Each time a request for a
matching target is served, one matching fault is consumed (`count` -1 means "forever").

`mutate` (API answers, notifications and the Alipay return) changes the message *before* it is signed
(and, for WeChat notifications, encrypted), so that it verifies: what an attacker holding a valid
signature for one message, or a misrouted gateway, would send. `set` maps a dotted field path to its
new value, `drop` lists paths to remove; `sign_with` (WeChat: `rogue` = a key of no serial we know,
`cert` / `pubkey` = the platform certificate / public key) and `timestamp_skew` (seconds subtracted from
the signed `Wechatpay-Timestamp`) change the envelope instead.
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import threading
from dataclasses import asdict, dataclass
from typing import Any

API_KINDS = {"latency", "timeout", "http_500", "malformed", "bad_signature"}
NOTIFY_KINDS = {"latency", "drop", "duplicate", "reorder", "bad_signature"}
MESSAGE_KINDS = {"mutate"}  # taken when the message is built, for answers and notifications alike
ALL_KINDS = API_KINDS | NOTIFY_KINDS | MESSAGE_KINDS

TARGETS = {
    "wechat": [
        "wechat.pay",
        "wechat.query",
        "wechat.close",
        "wechat.refund",
        "wechat.query_refund",
        "wechat.certificates",
        "wechat.bill",
        "wechat.bill_download",
        "wechat.notify",
    ],
    "alipay": [
        "alipay.page_pay",
        "alipay.wap_pay",
        "alipay.query",
        "alipay.close",
        "alipay.refund",
        "alipay.refund_query",
        "alipay.bill",
        "alipay.bill_download",
        "alipay.notify",
        "alipay.return",
    ],
    "wallyt": [
        "wallyt.pay",
        "wallyt.query",
        "wallyt.close",
        "wallyt.refund",
        "wallyt.refund_query",
        "wallyt.bill",
        "wallyt.notify",
    ],
}


class FaultError(ValueError):
    pass


@dataclass
class Fault:
    id: int
    target: str
    kind: str
    count: int = 1
    ms: int | None = None
    apply: bool = False  # timeout: process the request before dropping the answer
    set: dict[str, Any] | None = None  # mutate: dotted path -> new value
    drop: list[str] | None = None  # mutate: dotted paths to remove
    sign_with: str | None = None  # mutate (WeChat): rogue | cert | pubkey
    timestamp_skew: int | None = None  # mutate (WeChat): seconds to move the signed timestamp back

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._faults: list[Fault] = []

    def add(self, spec: dict[str, Any]) -> Fault:
        target = str(spec.get("target") or "")
        kind = str(spec.get("kind") or "")
        if not target:
            raise FaultError("target is required")
        if kind not in ALL_KINDS:
            raise FaultError(f"unknown fault kind {kind!r}; one of {sorted(ALL_KINDS)}")
        is_notify = target.endswith((".notify", ".return"))
        if is_notify and kind not in NOTIFY_KINDS | MESSAGE_KINDS:
            raise FaultError(f"{kind!r} does not apply to notifications; one of {sorted(NOTIFY_KINDS)}")
        if not is_notify and "*" not in target and kind not in API_KINDS | MESSAGE_KINDS:
            raise FaultError(f"{kind!r} does not apply to API endpoints; one of {sorted(API_KINDS)}")
        if kind == "mutate" and not (
            spec.get("set") or spec.get("drop") or spec.get("sign_with") or spec.get("timestamp_skew")
        ):
            raise FaultError("mutate needs set, drop, sign_with or timestamp_skew")
        if spec.get("sign_with") not in (None, "rogue", "cert", "pubkey"):
            raise FaultError("sign_with is one of rogue, cert, pubkey")
        count = int(spec.get("count", 1))
        if count == 0 or count < -1:
            raise FaultError("count must be >= 1, or -1 for unlimited")
        ms = spec.get("ms")
        fault = Fault(
            id=next(self._ids),
            target=target,
            kind=kind,
            count=count,
            ms=int(ms) if ms is not None else None,
            apply=bool(spec.get("apply", False)),
            set=dict(spec["set"]) if spec.get("set") else None,
            drop=[str(p) for p in spec["drop"]] if spec.get("drop") else None,
            sign_with=spec.get("sign_with"),
            timestamp_skew=int(spec["timestamp_skew"]) if spec.get("timestamp_skew") else None,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, target: str, kinds: set[str]) -> Fault | None:
        """Consume and return the first active fault matching target and one of kinds."""
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and fnmatch.fnmatchcase(target, fault.target):
                    if fault.count > 0:
                        fault.count -= 1
                        if fault.count == 0:
                            self._faults.remove(fault)
                    return Fault(**asdict(fault))
        return None

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_json() for f in self._faults]

    def clear(self, target: str | None = None) -> int:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if target and f.target != target]
            return before - len(self._faults)


def mutated(data: dict[str, Any], fault: Fault | None) -> dict[str, Any]:
    """A copy of `data` with the fault's `set` / `drop` applied (dotted paths into nested dicts)."""
    if fault is None or fault.kind != "mutate" or not (fault.set or fault.drop):
        return data
    out = copy.deepcopy(data)
    for path, value in (fault.set or {}).items():
        *parents, leaf = path.split(".")
        node = out
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    for path in fault.drop or []:
        *parents, leaf = path.split(".")
        node = out
        for name in parents:
            node = node.get(name, {})
        node.pop(leaf, None)
    return out
