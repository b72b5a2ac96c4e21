"""Chaos: no payment or refund is left behind when gateways and our own processes fail at random.

    .venv/bin/python bench/chaos.py [--n 300] [--seed 1] [--fault-rate 0.2] [--clients 8] [--quiesce 300]
                                    [--dbname locker_bench_chaos] [--keep-tmp]

1. Starts the system the way ``make run`` does, on a fresh database of its own (on the embedded PostgreSQL): the
   sandbox gateways (``python -m sandbox``), the web app under gunicorn (2 workers x 4 threads), a Celery worker
   and Celery beat, with the reconciliation intervals and grace periods shortened (``RECONCILE_INTERVAL_SECONDS``,
   ``RECONCILE_TIME_SCALE``, ``REFUND_RESEND_GRACE_SECONDS``, ``ORDER_EXPIRY_SECONDS``).
2. Sets a seeded random fault plan in the sandbox (``POST /control/faults/plan``): about ``--fault-rate`` of the
   gateway calls time out (some after the gateway did the work), answer 5xx, garbage or a wrong signature, and
   about as many notifications are dropped, duplicated, delayed, reordered or wrongly signed.
3. Runs N payments from ``--clients`` concurrent clients through the API, spread over every channel and both
   products (locker rentals, wallet top-ups): pays most of them at the gateway (the sandbox's control API, as the
   payer's phone would), then for rentals requests refunds (full, partial, several per payment) that finance
   approves. Mid-run, seeded: ``kill -9`` of a gunicorn worker, ``kill -9`` of the Celery worker (started again),
   and a ``kill -9`` + restart of the sandbox.
4. Stops the faults and lets reconciliation (beat) run to quiescence, bounded by ``--quiesce`` seconds.
5. Compares, per payment and per refund, our state and amounts with the sandbox's; and every wallet with its
   ledger (``bench/_chaos_check.py``).

The last line is ``RESULT payments=<n> refunds=<n> faults=<n> stuck=<n> mismatches=<n> ledger_breaks=<n>
seconds=<s>``; the target is stuck=0 mismatches=0 ledger_breaks=0. Exit status 0 only then.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._chaos_check import compare, sandbox_state
from bench._chaos_system import (
    Process,
    celery_beat,
    celery_worker,
    kill_a_gunicorn_worker,
    wait_gunicorn_workers,
)
from bench._common import (
    Gunicorn,
    bench_env,
    drop_database,
    hold_bench_lock,
    recreate_database,
    run_with_tmp,
    sandbox_gateway_env,
    setup_django,
)

CHANNELS = ("wechat_jsapi", "wechat_native", "wechat_h5", "alipay_page", "alipay_wap", "wallyt_jsapi", "wallet")
GATEWAY_CHANNELS = tuple(c for c in CHANNELS if c != "wallet")
SEED_BALANCE_FEN = 1_000_000
RETRYABLE = {500, 502, 503, 504}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="payments")
    parser.add_argument("--seed", type=int, default=1, help="seeds the plan: payments, refunds, faults, kills")
    parser.add_argument("--fault-rate", type=float, default=0.2, help="share of gateway calls and notifications hit")
    parser.add_argument("--clients", type=int, default=8, help="concurrent API clients")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (x 4 threads)")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--paid-share", type=float, default=0.9, help="share of payments paid at the gateway")
    parser.add_argument("--quiesce", type=float, default=300, help="at most this long for reconciliation to settle")
    parser.add_argument("--time-scale", type=float, default=0.01, help="RECONCILE_TIME_SCALE of the run")
    parser.add_argument("--expiry", type=int, default=45, help="ORDER_EXPIRY_SECONDS of the run")
    parser.add_argument("--dbname", default="locker_bench_chaos", help="must contain 'bench'; dropped, recreated")
    parser.add_argument("--keep-db", action="store_true", help="keep the bench database (default: dropped)")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temporary folder (logs) of a good run")
    parser.add_argument("--verbose", action="store_true", help="list every stuck item and mismatch")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- the seeded plan


@dataclass
class Flow:
    index: int
    user: int
    product: str  # rental | topup
    channel: str
    hours: int = 1
    amount_fen: int = 0  # top-ups
    pay: bool = True
    refunds: list[float] = field(default_factory=list)  # shares of the amount paid; 1.0 = what is left


def make_plan(args: argparse.Namespace, users: int) -> list[Flow]:
    rng = random.Random(args.seed)
    flows = []
    for i in range(args.n):
        channel = CHANNELS[i % len(CHANNELS)]
        topup = channel != "wallet" and rng.random() < 0.15
        flow = Flow(
            index=i,
            user=rng.randrange(users),
            product="topup" if topup else "rental",
            channel=channel,
            hours=rng.randint(1, 3),
            amount_fen=rng.randint(1, 50) * 100,
            pay=channel == "wallet" or rng.random() < args.paid_share,
        )
        if not topup:
            shape = rng.random()
            if shape < 0.25:
                flow.refunds = [1.0]  # in full
            elif shape < 0.45:
                flow.refunds = [rng.choice((0.2, 0.3, 0.5))]  # partly
            elif shape < 0.7:
                flow.refunds = [rng.choice((0.2, 0.3)), rng.choice((0.2, 0.3)), rng.choice((0.3, 1.0))]  # several
        flows.append(flow)
    rng.shuffle(flows)
    return flows


# --------------------------------------------------------------------------- clients


class Client:
    """One API client (a thread): JWT auth, retries on transport errors and 5xx (a gunicorn worker killed mid
    request, a gateway that timed out), like a mobile app retrying."""

    def __init__(self, base_url: str, sandbox_url: str) -> None:
        self.base_url, self.sandbox_url = base_url, sandbox_url
        self.session = requests.Session()
        self.sandbox = requests.Session()

    def call(self, method: str, path: str, token: str, body: dict | None = None, attempts: int = 8):
        for attempt in range(attempts):
            try:
                response = self.session.request(
                    method,
                    self.base_url + path,
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=40,
                )
            except requests.RequestException:
                response = None
            if response is not None and response.status_code not in RETRYABLE:
                return response
            time.sleep(min(4.0, 0.3 * 2**attempt))
        return response

    def control(self, path: str, body: dict | None = None, attempts: int = 40):
        """The sandbox's control API (the payer's phone): retried through a sandbox restart."""
        for _ in range(attempts):
            try:
                response = self.sandbox.post(f"{self.sandbox_url}/control/{path}", json=body or {}, timeout=10)
                return response
            except requests.RequestException:
                time.sleep(0.5)
        return None

    def open_cashier(self, url: str) -> bool:
        for attempt in range(6):
            try:
                if self.sandbox.get(url, timeout=10).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.3 * 2**attempt)
        return False


@dataclass
class Context:
    args: argparse.Namespace
    base_url: str
    sandbox_url: str
    tokens: list[str]
    compartments: list[int]
    finance_id: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: int = 0
    events: Counter = field(default_factory=Counter)
    local: threading.local = field(default_factory=threading.local)

    def client(self) -> Client:
        if not hasattr(self.local, "client"):
            self.local.client = Client(self.base_url, self.sandbox_url)
        return self.local.client

    def note(self, what: str) -> None:
        with self.lock:
            self.events[what] += 1

    def compartment(self) -> int | None:
        with self.lock:
            return self.compartments.pop() if self.compartments else None


def run_flow(flow: Flow, ctx: Context) -> None:
    from django.db import connections

    try:
        _run_flow(flow, ctx)
    except Exception as exc:  # a client error must not stop the run: the check at the end judges the system
        ctx.note(f"client error {type(exc).__name__}")
    finally:
        connections.close_all()
        with ctx.lock:
            ctx.done += 1


def _run_flow(flow: Flow, ctx: Context) -> None:
    client, token = ctx.client(), ctx.tokens[flow.user]
    order = _create_order(flow, ctx, client, token)
    if order is None:
        ctx.note("order not created")
        return
    body = {"order_no": order["order_no"], "channel": flow.channel}
    if flow.channel in ("wechat_jsapi", "wallyt_jsapi"):
        body["openid"] = f"o-chaos-{flow.user}"
    started = client.call("POST", "/api/v1/payments/", token, body)
    if started is None or started.status_code != 201:
        if started is not None and started.status_code == 429:
            ctx.note("payment refused by a rate limit (the run's limits are too low)")
        else:
            ctx.note("payment not started (the gateway never answered)")
        return
    payment = started.json()
    payment_no = payment["payment_no"]
    if flow.channel.startswith("alipay") and not client.open_cashier(payment["pay_url"]):
        ctx.note("alipay cashier never opened")
    if flow.channel != "wallet":
        if not flow.pay:
            ctx.note("left unpaid")
            return
        gateway = flow.channel.split("_")[0]
        paid = client.control(f"{gateway}/transactions/{payment_no}/pay")
        if paid is None or paid.status_code != 200:
            ctx.note("unknown at the gateway: not paid")
            return
    if not _wait_paid(client, token, payment_no):
        ctx.note("not seen paid within 60s (left to reconciliation)")
        return
    ctx.note("paid")
    amount = order["amount_fen"]
    left = amount
    for share in flow.refunds:
        fen = left if share >= 1.0 else max(1, int(amount * share))
        if fen <= 0 or fen > left:
            break
        created = client.call(
            "POST", "/api/v1/refunds/", token, {"order_no": order["order_no"], "amount_fen": fen, "reason": "chaos"}
        )
        if created is not None and created.status_code == 201:
            left -= fen
            ctx.note("refund requested")
        _approve_requested(order["order_no"], ctx)


def _create_order(flow: Flow, ctx: Context, client: Client, token: str) -> dict | None:
    if flow.product == "topup":
        made = client.call("POST", "/api/v1/wallet/topups/", token, {"amount_fen": flow.amount_fen})
        return made.json() if made is not None and made.status_code == 201 else None
    for _ in range(5):
        compartment = ctx.compartment()
        if compartment is None:
            return None
        made = client.call("POST", "/api/v1/orders/", token, {"compartment_id": compartment, "hours": flow.hours})
        if made is not None and made.status_code == 201:
            return made.json()
    return None


def _wait_paid(client: Client, token: str, payment_no: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = client.call("GET", f"/api/v1/payments/{payment_no}/", token)
        if got is not None and got.status_code == 200 and got.json().get("status") == "succeeded":
            return True
        time.sleep(0.5)
    return False


def _approve_requested(order_no: str, ctx: Context) -> int:
    """Finance approves what is waiting (also refunds whose request answer was lost)."""
    from django.contrib.auth import get_user_model

    from refunds.models import Refund
    from refunds.services import refund_approve

    finance = get_user_model().objects.get(pk=ctx.finance_id)
    waiting = Refund.objects.filter(status=Refund.Status.REQUESTED)
    if order_no:
        waiting = waiting.filter(order__order_no=order_no)
    approved = 0
    for refund in waiting.order_by("id"):
        try:
            refund_approve(refund_id=refund.pk, approver=finance, note="chaos: approved")
            approved += 1
        except Exception:
            ctx.note("approve refused")
    return approved


# --------------------------------------------------------------------------- kills


class Monkey(threading.Thread):
    """Kills processes when the run reaches seeded points of its progress: a gunicorn worker, the Celery worker
    (started again), the sandbox (started again)."""

    def __init__(self, ctx: Context, total: int, seed: int, *, gunicorn, worker: Process, sandbox, workers: int):
        super().__init__(name="chaos-monkey", daemon=True)
        rng = random.Random(seed * 7919)
        self.ctx, self.total, self.gunicorn, self.worker, self.sandbox = ctx, total, gunicorn, worker, sandbox
        self.workers = workers
        self.rng = rng
        self.plan = sorted(
            [
                (rng.uniform(0.15, 0.35), "gunicorn worker"),
                (rng.uniform(0.35, 0.55), "celery worker"),
                (rng.uniform(0.55, 0.8), "sandbox"),
            ]
        )
        self.done: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while self.plan and not self.stop.is_set():
            at, what = self.plan[0]
            if self.ctx.done >= at * self.total:
                self.plan.pop(0)
                self._kill(what)
            else:
                time.sleep(0.1)

    def _kill(self, what: str) -> None:
        started = time.monotonic()
        if what == "gunicorn worker":
            if kill_a_gunicorn_worker(self.gunicorn, self.rng.choice) is None:
                return
            wait_gunicorn_workers(self.gunicorn, self.workers)
        elif what == "celery worker":
            self.worker.kill()
            time.sleep(1.0)
            self.worker.start()
        else:
            self.sandbox.restart(kill=True)
        self.done.append(f"kill -9 {what} at {self.ctx.done}/{self.total} ({time.monotonic() - started:.1f}s)")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    return run_with_tmp("chaos-bench-", run, parse_args(argv))


def run(args: argparse.Namespace, tmp: Path) -> bool:
    from sandbox.testing import running_sandbox

    with running_sandbox(data_dir=tmp / "sandbox", notify_scale=0.05, refund_settle_seconds=1) as sandbox:
        gunicorn = Gunicorn(env={}, workers=args.workers, threads=4, log_path=tmp / "gunicorn.log")
        env = bench_env(dbname=args.dbname, sandbox_dir=tmp / "sandbox", work_dir=tmp, conn_max_age=60)
        env.update(sandbox_gateway_env(sandbox.base_url, tmp / "sandbox"))
        env.update(
            {
                "PUBLIC_BASE_URL": gunicorn.base_url,
                "WECHAT_PAY_NOTIFY_URL": f"{gunicorn.base_url}/api/v1/payments/notify/wechat/",
                "ALIPAY_NOTIFY_URL": f"{gunicorn.base_url}/api/v1/payments/notify/alipay/",
                "WALLYT_NOTIFY_URL": f"{gunicorn.base_url}/api/v1/payments/notify/wallyt/",
                "RECONCILE_INTERVAL_SECONDS": "2",
                "RECONCILE_TIME_SCALE": str(args.time_scale),
                "REFUND_RESEND_GRACE_SECONDS": "3",
                "ORDER_EXPIRY_SECONDS": str(args.expiry),
                "REFUND_AUTO_APPROVE_MAX_FEN": "0",
                # every client calls from one address at a pace no customer keeps: the run
                # measures healing, not the rate limits (config/tests/test_throttling.py does)
                **{f"THROTTLE_{s}": "100000/m" for s in ("LOGIN", "PAYMENT_CREATE", "PAYMENT_SYNC", "REFUND", "TOPUP")},
            }
        )
        setup_django(env)
        gunicorn.env = {**gunicorn.env, **env}

        from django.conf import settings

        from core.embedded_pg import ensure_server

        server = ensure_server(Path(settings.EMBEDDED_PG_DIR))
        lock = hold_bench_lock(server, args.dbname)
        try:
            return _run(args, tmp, env, server, sandbox, gunicorn)
        finally:
            lock.close()
            if not args.keep_db:
                drop_database(server, args.dbname)


def seed(args: argparse.Namespace) -> tuple[list[str], list[int], int]:
    """Users with a funded wallet (their JWTs), enough compartments, a price plan, and a finance user."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from core.audit import Actor
    from core.jwt_auth import token_for
    from lockers.models import Cabinet, Compartment, PricePlan
    from wallets.models import WalletTransaction
    from wallets.services import wallet_credit

    user_model = get_user_model()
    PricePlan.objects.create(size="M", price_per_hour_fen=500, min_hours=1, cap_fen=5_000)
    compartments = []
    for c in range(args.n // 100 + 1):
        cabinet = Cabinet.objects.create(code=f"CHAOS-{c:03d}", name=f"Chaos {c}", location="bench")
        made = Compartment.objects.bulk_create(
            [Compartment(cabinet=cabinet, label=f"C{i:03d}", size="M") for i in range(120)]
        )
        compartments += [m.pk for m in made]
    tokens = []
    for u in range(max(8, args.n // 4)):
        user = user_model.objects.create(username=f"chaos-{u:04d}", password="!unusable")
        wallet_credit(
            user_id=user.pk,
            amount_fen=SEED_BALANCE_FEN,
            type=WalletTransaction.Type.ADJUSTMENT,
            reference=f"SEED-{u}",
            actor=Actor.system("bench"),
        )
        tokens.append(token_for(user))
    finance = user_model.objects.create(username="chaos-finance", password="!unusable", is_staff=True)
    finance.groups.add(Group.objects.get(name="finance"))
    return tokens, compartments, finance.pk


def _run(args: argparse.Namespace, tmp: Path, env: dict, server, sandbox, gunicorn: Gunicorn) -> bool:
    from django.core.management import call_command
    from django.db import connections

    t0 = time.perf_counter()
    recreate_database(server, args.dbname)
    call_command("migrate", interactive=False, verbosity=0)
    tokens, compartments, finance_id = seed(args)
    connections.close_all()
    worker, beat = celery_worker(gunicorn.env, tmp, concurrency=args.concurrency), celery_beat(gunicorn.env, tmp)
    try:
        gunicorn.start()
        worker.start()
        beat.start()
        print(f"setup: {args.dbname} migrated and seeded, system started in {time.perf_counter() - t0:.1f}s")
        return _chaos(args, tmp, sandbox, gunicorn, worker, beat, tokens, compartments, finance_id)
    finally:
        for process in (beat, worker):
            process.stop()
        gunicorn.stop()


def _chaos(args, tmp, sandbox, gunicorn, worker, beat, tokens, compartments, finance_id) -> bool:
    started = time.monotonic()
    sandbox.control("faults/plan", json={"rate": args.fault_rate, "seed": args.seed, "ms": [200, 2000]})
    ctx = Context(
        args=args,
        base_url=gunicorn.base_url,
        sandbox_url=sandbox.base_url,
        tokens=tokens,
        compartments=compartments,
        finance_id=finance_id,
    )
    flows = make_plan(args, len(tokens))
    monkey = Monkey(ctx, len(flows), args.seed, gunicorn=gunicorn, worker=worker, sandbox=sandbox, workers=args.workers)
    monkey.start()
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        list(pool.map(lambda flow: run_flow(flow, ctx), flows))
    monkey.stop.set()
    monkey.join(timeout=120)
    run_seconds = time.monotonic() - started
    plan = _sandbox_call(sandbox, "faults/plan")
    fired, seen = plan["fired"], plan["seen"]
    _sandbox_call(sandbox, "faults", method="DELETE")
    late = _approve_requested("", ctx)  # finance clears the queue
    print(
        f"run: {len(flows)} payments by {args.clients} clients in {run_seconds:.0f}s; "
        f"{fired} sandbox faults in about {seen} gateway calls and notifications "
        f"({100 * fired / max(1, seen):.0f}%); {'; '.join(monkey.done)}"
    )
    print("  clients saw: " + ", ".join(f"{k} {v}" for k, v in sorted(ctx.events.items())) + f"; approved later {late}")
    for process in (worker, beat):
        if not process.alive():
            print(f"  {process.name} is not running:\n{process.log_tail()}")

    check, waited = _quiesce(args, sandbox)
    seconds = time.monotonic() - started
    _report(check, waited, tmp, args)
    faults = fired + len(monkey.done)
    print(
        f"RESULT payments={sum(check.counts['payments'][s] for s in _PAYMENT_STATES)} "
        f"refunds={sum(check.counts['refunds'].values())} faults={faults} stuck={len(check.stuck)} "
        f"mismatches={len(check.mismatches)} ledger_breaks={len(check.ledger_breaks)} seconds={seconds:.0f}"
    )
    return check.clean and len(monkey.done) == 3


_PAYMENT_STATES = ("created", "pending", "succeeded", "failed", "closed")


def _sandbox_call(sandbox, path: str, **kwargs):
    for _ in range(40):
        try:
            return sandbox.control(path, **kwargs)
        except requests.RequestException:
            time.sleep(0.5)
    return sandbox.control(path, **kwargs)


def _quiesce(args, sandbox):
    """Reconciliation runs (beat) until every payment and refund is final here and agrees with the gateway, or
    ``--quiesce`` seconds pass. Returns the last check and how long it took."""
    from django.db import connections

    started = time.monotonic()
    while True:
        trades, refunds = sandbox_state(sandbox)
        check = compare(trades, refunds)
        connections.close_all()
        waited = time.monotonic() - started
        if (check.clean and check.open_here == 0) or waited > args.quiesce:
            return check, waited
        time.sleep(3)


def _report(check, waited: float, tmp: Path, args) -> None:
    from refunds.models import RefundEvent

    healed = Counter(
        RefundEvent.objects.filter(action__in=("resubmit", "gateway_unknown", "submit")).values_list(
            "action", flat=True
        )
    )
    print(f"quiescence: {'reached' if check.open_here == 0 else 'NOT reached'} after {waited:.0f}s of reconciliation")
    print("  payments: " + ", ".join(f"{k} {v}" for k, v in sorted(check.counts["payments"].items())))
    print("  channels: " + ", ".join(f"{k} {v}" for k, v in sorted(check.counts["channels"].items())))
    print("  refunds:  " + ", ".join(f"{k} {v}" for k, v in sorted(check.counts["refunds"].items())))
    print("  refund healing: " + ", ".join(f"{k} {v}" for k, v in sorted(healed.items())))
    for title, items in (("stuck", check.stuck), ("mismatch", check.mismatches), ("ledger", check.ledger_breaks)):
        for line in items if args.verbose else items[:10]:
            print(f"  {title}: {line}")
    if not check.clean:
        print(f"  logs in {tmp} (gunicorn.log, worker.log, beat.log)")


if __name__ == "__main__":
    sys.exit(main())
