"""Fault injection registry.

A fault is `{target, kind, count, ms, apply}`; `target` is an endpoint name such as
`wechat.pay` (fnmatch patterns like `wechat.*` or `*` work too). Each time a request for a
matching target is served, one matching fault is consumed (`count` -1 means "forever").

A fault plan (`Faults.set_plan`, `POST /control/faults/plan`) injects faults at random instead: each served
request or created notification draws one of the plan's kinds with probability `rate`, from a seeded random
generator (the chaos bench). Explicit faults are taken first.

Faults and the plan are kept in the data folder's database, so a restart keeps them.

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
import random
import threading
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .persist import Persist

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
        "wechat.abnormal_refund",
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


@dataclass
class Plan:
    """Random faults: with probability `rate` a served request (target matching `targets`) gets one of `api`'s
    kinds, and a created notification one of `notify`'s (weights). Timeouts last `ms` (a [low, high] range) and
    are applied before the answer is lost with probability `apply`; latencies and reorders last `ms` too."""

    rate: float = 0.0
    seed: int = 0
    targets: list[str] = field(default_factory=lambda: ["*"])
    api: dict[str, float] = field(
        default_factory=lambda: {"timeout": 1, "http_500": 1, "malformed": 1, "bad_signature": 1}
    )
    notify: dict[str, float] = field(
        default_factory=lambda: {"latency": 1, "drop": 1, "duplicate": 1, "reorder": 1, "bad_signature": 1}
    )
    ms: list[int] = field(default_factory=lambda: [200, 2000])
    apply: float = 0.5

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Plan:
        plan = cls(**{k: v for k, v in spec.items() if k in cls.__dataclass_fields__})
        if not 0 <= float(plan.rate) <= 1:
            raise FaultError("rate is between 0 and 1")
        unknown = (set(plan.api) - API_KINDS) | (set(plan.notify) - NOTIFY_KINDS)
        if unknown:
            raise FaultError(f"unknown fault kinds in the plan: {sorted(unknown)}")
        low, high = (int(v) for v in plan.ms)
        if not 0 <= low <= high:
            raise FaultError("ms is [low, high]")
        return plan


class Faults:
    def __init__(self, persist: Persist | None = None) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._faults: list[Fault] = []
        self._plan = Plan()
        self._random = random.Random(0)
        self.fired = 0  # faults taken (explicit and planned) since the plan was set
        self.seen = 0  # requests and notifications the plan could have hit since it was set
        self.persist = persist
        if persist is not None:
            saved = persist.get("meta", "faults") or {}
            self._faults = [Fault(**f) for f in saved.get("faults", [])]
            self._ids = itertools.count(int(saved.get("next_id", 1)))
            if saved.get("plan"):
                self._plan = Plan(**saved["plan"])
                self.fired = int(saved.get("fired", 0))
                self.seen = int(saved.get("seen", 0))
                # a restarted process draws another sequence from the same seed
                self._random = random.Random(f"{self._plan.seed}:{self.fired}")

    def _save(self) -> None:
        """Under `_lock`."""
        if self.persist is not None:
            nxt = next(self._ids)
            self._ids = itertools.count(nxt)
            self.persist.put(
                "meta",
                "faults",
                {
                    "faults": [f.to_json() for f in self._faults],
                    "next_id": nxt,
                    "plan": asdict(self._plan),
                    "fired": self.fired,
                    "seen": self.seen,
                },
            )

    def set_plan(self, spec: dict[str, Any]) -> Plan:
        plan = Plan.from_spec(spec)
        with self._lock:
            self._plan = plan
            self._random = random.Random(plan.seed)
            self.fired = self.seen = 0
            self._save()
        return plan

    def plan(self) -> dict[str, Any]:
        with self._lock:
            return {**asdict(self._plan), "fired": self.fired, "seen": self.seen}

    def _planned(self, target: str, kinds: set[str]) -> Fault | None:
        """Under `_lock`: a random fault of the plan for this request or notification, or None."""
        plan = self._plan
        if plan.rate <= 0 or not any(fnmatch.fnmatchcase(target, t) for t in plan.targets):
            return None
        weights = plan.notify if target.endswith(".notify") else plan.api
        if target.endswith(".return"):
            return None
        choices = [(kind, w) for kind, w in weights.items() if kind in kinds and w > 0]
        if not choices:
            return None  # (`mutate`, asked for every message, is never planned)
        if kinds - {"latency"}:  # each request and notification is counted once (not its latency draw)
            self.seen += 1
        share = sum(w for _, w in choices) / sum(w for w in weights.values() if w > 0)
        if self._random.random() >= plan.rate * share:
            return None
        kind = self._random.choices([k for k, _ in choices], weights=[w for _, w in choices])[0]
        low, high = plan.ms
        return Fault(
            id=0,
            target=target,
            kind=kind,
            ms=self._random.randint(low, high),
            apply=kind == "timeout" and self._random.random() < plan.apply,
        )

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
            self._save()
        return fault

    def take(self, target: str, kinds: set[str]) -> Fault | None:
        """Consume and return the first active fault matching target and one of kinds (else one of the plan's)."""
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and fnmatch.fnmatchcase(target, fault.target):
                    if fault.count > 0:
                        fault.count -= 1
                        if fault.count == 0:
                            self._faults.remove(fault)
                    self.fired += 1
                    self._save()
                    return Fault(**asdict(fault))
            planned = self._planned(target, kinds)
            if planned is not None:
                self.fired += 1
                self._save()
            return planned

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_json() for f in self._faults]

    def clear(self, target: str | None = None) -> int:
        """Remove the explicit faults (of one target) and, when clearing all, the plan."""
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if target and f.target != target]
            if not target:
                self._plan = Plan()
            self._save()
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
