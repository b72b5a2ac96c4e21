"""Background scheduler and notification deliveries with gateway retry schedules.

A delivery is described by data only (its gateway's `spec`: the body or the parameters it is built from), so
that it can be written to the data folder's database (`sandbox.persist`) and picked up again, with its retry
schedule, when the process restarts: each gateway registers how to build (sign) a message from a spec and
what reply accepts it (`Notifier.register`)."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests

from .faults import NOTIFY_KINDS, Faults
from .state import now_cst, rfc3339

if TYPE_CHECKING:
    from .persist import Persist

# Delays between attempts (seconds), first attempt immediate; multiplied by --notify-scale.
SCHEDULES: dict[str, list[float]] = {
    # PROTOCOLS A.7: 15s/15s/30s/3m/10m/20m/30m/30m/30m/60m/3h/3h/3h/6h/6h
    "wechat": [15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600],
    # PROTOCOLS B.5: 4m, 10m, 10m, 1h, 2h, 6h, 15h (8 attempts in total)
    "alipay": [240, 600, 600, 3600, 7200, 21600, 54000],
    # PROTOCOLS C.4: 0/15/15/30/180/1800/1800/1800/1800/3600
    "wallyt": [15, 15, 30, 180, 1800, 1800, 1800, 1800, 3600],
}
REORDER_DEFAULT_MS = 1000
SEND_TIMEOUT = 5.0


class Scheduler:
    """Runs callables at a monotonic due time on a small worker pool."""

    def __init__(self, workers: int = 8) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stopped = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox-job")
        self._thread = threading.Thread(target=self._run, name="sandbox-scheduler", daemon=True)
        self._thread.start()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cv:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._seq), fn))
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cv.wait(timeout)
                if self._stopped:
                    return
                _, _, fn = heapq.heappop(self._heap)
            try:
                self._pool.submit(fn)
            except RuntimeError:
                return

    def clear(self) -> None:
        with self._cv:
            self._heap.clear()

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._heap.clear()
            self._cv.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)


BuildFn = Callable[[dict[str, Any], bool], tuple[dict[str, str], bytes]]  # (spec, bad_signature) -> (headers, body)
AcceptFn = Callable[[int, bytes], bool]
PERSISTED = (
    "id",
    "gateway",
    "event",
    "url",
    "ref",
    "spec",
    "state",
    "created_at",
    "attempts",
    "faults",
    "bad_signature_attempts",
    "duplicate_of",
    "last_body",
    "last_headers",
    "due_at",
)


@dataclass
class Delivery:
    id: str
    gateway: str
    event: str
    url: str
    ref: dict[str, str]
    spec: dict[str, Any]  # what the gateway builds each attempt from (see Notifier.register)
    state: str = "pending"  # pending | held | delivered | failed | dropped | cancelled
    created_at: str = field(default_factory=lambda: rfc3339(now_cst()) or "")
    attempts: list[dict[str, Any]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    bad_signature_attempts: int = 0
    duplicate_of: str | None = None
    generation: int = 0  # bumped on reset so stale timers do nothing
    last_body: str = ""
    last_headers: dict[str, str] = field(default_factory=dict)
    due_at: float | None = None  # wall clock (epoch seconds) of the next attempt, or of the release when held
    release_after_first: list[Delivery] = field(default_factory=list)  # held by `reorder`

    @property
    def schedule(self) -> list[float]:
        return SCHEDULES[self.gateway]

    def record(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in PERSISTED}

    def to_json(self, with_body: bool = True) -> dict[str, Any]:
        data = {
            "id": self.id,
            "gateway": self.gateway,
            "event": self.event,
            "url": self.url,
            "ref": self.ref,
            "state": self.state,
            "created_at": self.created_at,
            "attempts": list(self.attempts),
            "faults": list(self.faults),
            "duplicate_of": self.duplicate_of,
        }
        if with_body:
            data["body"] = self.last_body
            data["headers"] = dict(self.last_headers)
        return data


class Notifier:
    def __init__(self, scheduler: Scheduler, faults: Faults, scale: float, persist: Persist | None = None) -> None:
        self.scheduler = scheduler
        self.faults = faults
        self.scale = scale
        self.persist = persist
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._deliveries: dict[str, Delivery] = {}
        self._held: dict[str, list[Delivery]] = {}  # gateway -> deliveries waiting (reorder)
        self._generation = 0
        self._builders: dict[str, tuple[BuildFn, AcceptFn]] = {}

    def register(self, gateway: str, build: BuildFn, accept: AcceptFn) -> None:
        """How `gateway` builds (and signs) a notification from its spec, and which reply accepts it."""
        self._builders[gateway] = (build, accept)

    def resume(self) -> int:
        """After a restart: load every delivery of the previous process and carry on with those still pending
        (at their due time; one that fell due while the process was down goes out now) or held. Call once,
        after the gateways registered. Returns how many were resumed."""
        if self.persist is None:
            return 0
        resumed, now, last = 0, time.time(), 0
        for _, data in self.persist.all("delivery"):
            delivery = Delivery(**{k: v for k, v in data.items() if k in PERSISTED}, generation=self._generation)
            self._deliveries[delivery.id] = delivery
            last = max(last, int(delivery.id[3:]) if delivery.id[3:].isdigit() else 0)
            delay = max(0.0, (delivery.due_at or now) - now)
            if delivery.state == "pending":
                self._schedule_attempt(delivery, delay)
                resumed += 1
            elif delivery.state == "held":
                self._held.setdefault(delivery.gateway, []).append(delivery)
                self.scheduler.call_later(delay, lambda d=delivery: self._release(d))
                resumed += 1
        self._ids = itertools.count(last + 1)
        return resumed

    def _save(self, delivery: Delivery) -> None:
        if self.persist is not None and delivery.generation == self._generation:
            self.persist.put("delivery", delivery.id, delivery.record())

    # ------------------------------------------------------------------ public
    def submit(self, *, gateway: str, event: str, url: str, ref: dict[str, str], spec: dict[str, Any]) -> Delivery:
        with self._lock:
            delivery = Delivery(
                id=f"NTF{next(self._ids):06d}",
                gateway=gateway,
                event=event,
                url=url,
                ref=ref,
                spec=spec,
                generation=self._generation,
            )
            self._deliveries[delivery.id] = delivery
            released = self._held.pop(gateway, [])
        target = f"{gateway}.notify"
        delay = 0.0
        latency = self.faults.take(target, {"latency"})
        if latency:
            delivery.faults.append("latency")
            delay = (latency.ms or 0) / 1000.0
        fault = self.faults.take(target, NOTIFY_KINDS - {"latency"})
        if fault:
            delivery.faults.append(fault.kind)
        if fault and fault.kind == "drop":
            delivery.state = "dropped"
            self._save(delivery)
        elif fault and fault.kind == "reorder":
            delivery.state = "held"
            hold = (fault.ms or REORDER_DEFAULT_MS) / 1000.0
            delivery.due_at = time.time() + hold
            with self._lock:
                self._held.setdefault(gateway, []).append(delivery)
            self._save(delivery)
            self.scheduler.call_later(hold, lambda: self._release(delivery))
        else:
            if fault and fault.kind == "bad_signature":
                delivery.bad_signature_attempts = 1
            # deliveries held back by a `reorder` fault go out once this newer one has been sent
            delivery.release_after_first.extend(released)
            released = []
            self._schedule_attempt(delivery, delay)
            if fault and fault.kind == "duplicate":
                self._schedule_duplicate(delivery, delay)
        for held in released:  # this one is not sent (dropped/held): do not keep the older ones waiting
            self.scheduler.call_later(delay, lambda held=held: self._release(held))
        return delivery

    def list(self, gateway: str | None = None, ref: dict[str, str] | None = None) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._deliveries.values())
        out = []
        for d in items:
            if gateway and d.gateway != gateway:
                continue
            if ref and any(d.ref.get(k) != v for k, v in ref.items() if v):
                continue
            out.append(d.to_json())
        return out

    def get(self, delivery_id: str) -> Delivery | None:
        with self._lock:
            return self._deliveries.get(delivery_id)

    def redeliver(self, delivery_id: str) -> Delivery | None:
        d = self.get(delivery_id)
        if d is None:
            return None
        with self._lock:
            d.state = "pending"
        self._schedule_attempt(d, 0)
        return d

    def reset(self) -> None:
        with self._lock:
            self._generation += 1
            self._deliveries.clear()
            self._held.clear()
            if self.persist is not None:
                self.persist.clear("delivery")

    # ------------------------------------------------------------------ internals
    def _release(self, delivery: Delivery) -> None:
        with self._lock:
            if delivery.state != "held":
                return
            delivery.state = "pending"
            delivery.due_at = None
            waiting = self._held.get(delivery.gateway, [])
            if delivery in waiting:
                waiting.remove(delivery)
        self._save(delivery)
        self._attempt(delivery)

    def _schedule_duplicate(self, original: Delivery, delay: float) -> None:
        with self._lock:
            dup = Delivery(
                id=f"NTF{next(self._ids):06d}",
                gateway=original.gateway,
                event=original.event,
                url=original.url,
                ref=original.ref,
                spec=original.spec,
                duplicate_of=original.id,
                generation=self._generation,
            )
            self._deliveries[dup.id] = dup
        self._schedule_attempt(dup, delay + 0.05)

    def _schedule_attempt(self, delivery: Delivery, delay: float) -> None:
        delivery.due_at = time.time() + delay
        self._save(delivery)
        self.scheduler.call_later(delay, lambda: self._attempt(delivery))

    def _attempt(self, delivery: Delivery) -> None:
        with self._lock:
            if delivery.generation != self._generation or delivery.state not in ("pending",):
                return
            bad = delivery.bad_signature_attempts > 0
            if bad:
                delivery.bad_signature_attempts -= 1
        build, accept = self._builders[delivery.gateway]
        headers, body = build(delivery.spec, bad)
        delivery.last_body = body.decode("utf-8", "replace")
        delivery.last_headers = dict(headers)
        started = time.monotonic()
        record: dict[str, Any] = {
            "n": len(delivery.attempts) + 1,
            "at": rfc3339(now_cst()),
            "bad_signature": bad,
            "status": None,
            "response": None,
            "error": None,
        }
        ok = False
        try:
            resp = requests.post(delivery.url, data=body, headers=headers, timeout=SEND_TIMEOUT)
            record["status"] = resp.status_code
            record["response"] = resp.content[:2000].decode("utf-8", "replace")
            ok = accept(resp.status_code, resp.content)
        except requests.RequestException as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
        record["duration_ms"] = int((time.monotonic() - started) * 1000)
        with self._lock:
            if delivery.generation != self._generation:
                return
            delivery.attempts.append(record)
            to_release, delivery.release_after_first = delivery.release_after_first, []
        for held in to_release:
            self.scheduler.call_later(0, lambda held=held: self._release(held))
        with self._lock:
            retries_done = len(delivery.attempts) - 1
            if ok or retries_done >= len(delivery.schedule):
                delivery.state = "delivered" if ok else "failed"
                delivery.due_at = None
                self._save(delivery)
                return
            delay = delivery.schedule[retries_done] * self.scale
        self._schedule_attempt(delivery, delay)
