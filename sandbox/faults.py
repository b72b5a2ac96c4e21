"""Fault injection registry.

A fault is `{target, kind, count, ms, apply}`; `target` is an endpoint name such as
`wechat.pay` (fnmatch patterns like `wechat.*` or `*` work too). Each time a request for a
matching target is served, one matching fault is consumed (`count` -1 means "forever").
"""

from __future__ import annotations

import fnmatch
import itertools
import threading
from dataclasses import asdict, dataclass
from typing import Any

API_KINDS = {"latency", "timeout", "http_500", "malformed", "bad_signature"}
NOTIFY_KINDS = {"latency", "drop", "duplicate", "reorder", "bad_signature"}
ALL_KINDS = API_KINDS | NOTIFY_KINDS

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
        is_notify = target.endswith(".notify")
        if is_notify and kind not in NOTIFY_KINDS:
            raise FaultError(f"{kind!r} does not apply to notifications; one of {sorted(NOTIFY_KINDS)}")
        if not is_notify and "*" not in target and kind not in API_KINDS:
            raise FaultError(f"{kind!r} does not apply to API endpoints; one of {sorted(API_KINDS)}")
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
