"""Payment creation latency, open loop, per channel, beside the gateway floor measured in the same run.

    .venv/bin/python bench/create_latency.py [--rates 20,50] [--seconds 10] [--workers 2] [--threads 4]
                                             [--channels all] [--dbname locker_bench_create]

1. Starts the sandbox (``sandbox.testing.running_sandbox``), points the gateways at it as conftest's ``gateways``
   fixture does, recreates its own database on the embedded PostgreSQL and migrates it.
2. Setup (not measured): per channel and rate, ``rate x seconds`` locker rentals waiting for payment (one reserved
   compartment each), each of its own user with an access token; the wallet channel's users hold the money.
3. Floor: per gateway product, the adapter's own prepay call (``gateway.create``: the same SDK call, signed, over
   the same transport) sent straight to the sandbox from this process, open loop at the same rate. Alipay's page
   and wap prepay make no call (the SDK signs a cashier URL locally) and the wallet none: their requests are set
   beside the cheapest gateway round trip (WeChat Native's floor).
4. Measured: gunicorn as production runs it (``-c python:config.gunicorn``, ``--workers 2 --threads 4`` as
   ``scripts/run-all.sh``; DEBUG off), ``POST /api/v1/payments/`` per channel at each rate. Open loop: request i
   is due at ``start + i / rate`` whatever happened before; its latency runs from that due time to the answer
   (queueing counts). Every answer must be 201 with the payment ``pending`` (``succeeded`` for the wallet), else
   exit 1.

Per rate and channel it prints p50 / p99 and the floor, and the CPU one creation costs (gunicorn, its PostgreSQL
backends, the bench's client, and the rest of the machine: mostly the sandbox answering), from /proc over each run.
The machine's cores divided by that is the rate at which the CPU is all spent: past it requests queue, whatever the
code's latency. The last line is ``RESULT rps=<top rate> worst_p99_ms=<x> floor_p99_ms=<y> worst_ratio=<z>
cpu_ms=<c> cpu_bound_rps=<b>`` where ``worst_ratio`` is the largest p99 / floor p99 over the channels (target <= 3)
and the floor is that channel's; ``cpu_ms`` is the mean CPU of a creation over every channel at the top rate and
``cpu_bound_rps`` the cores / ``cpu_ms``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    CpuMeter,
    Gunicorn,
    KeepAliveClient,
    check_bench_dbname,
    db_backend_pids,
    percentile,
    run_against_sandbox,
    run_with_tmp,
)

PATH = "/api/v1/payments/"
PRICE_FEN = 300
# channel -> (gateway, product) of its prepay call; None: no gateway round trip at creation
CHANNELS: dict[str, tuple[str, str] | None] = {
    "wechat_jsapi": ("wechat", "jsapi"),
    "wechat_native": ("wechat", "native"),
    "wechat_h5": ("wechat", "h5"),
    "alipay_page": None,  # the SDK signs the cashier URL locally: no call
    "alipay_wap": None,
    "wallyt_jsapi": ("wallyt", "jsapi"),
    "wallet": None,
}
REFERENCE_FLOOR = ("wechat", "native")  # what a creation without a gateway call is set beside
JSAPI = {"wechat_jsapi", "wallyt_jsapi"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="20,50", help="requests per second, comma separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each channel's run at each rate")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (scripts/run-all.sh: 2)")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (production: 4)")
    parser.add_argument("--clients", type=int, default=64, help="client threads of the open-loop sender")
    parser.add_argument("--channels", default="all", help="comma separated channels (default: every one)")
    parser.add_argument("--dbname", default="locker_bench_create", help="must contain 'bench'; dropped, recreated")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temporary folder (keys, gunicorn log)")
    args = parser.parse_args(argv)
    args.rates = [int(r) for r in args.rates.split(",") if r.strip()]
    args.channels = list(CHANNELS) if args.channels == "all" else [c.strip() for c in args.channels.split(",")]
    unknown = set(args.channels) - set(CHANNELS)
    if unknown or not args.rates or min(args.rates) < 1 or args.seconds <= 0 or args.workers < 1:
        parser.error(f"bad --channels {sorted(unknown)} or non-positive --rates/--seconds/--workers")
    check_bench_dbname(args.dbname)
    return args


# --------------------------------------------------------------------------- setup (not measured)


def create_rentals(tag: str, count: int, *, wallet_fen: int, one_user: bool = False) -> list[tuple[str, str]]:
    """``count`` pending locker rentals, each of its own user (wallet holding ``wallet_fen``) with an access token
    (``one_user``: all of one user, whose wallet holds ``wallet_fen`` for each).

    Returns (order_no, access token) per rental."""
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from core.jwt_auth import token_for
    from lockers.models import Cabinet, Compartment, Size
    from orders.models import Order
    from wallets.models import Wallet

    expires_at = timezone.now() + timedelta(hours=2)
    pricing = {"size": "M", "hours": 1, "billed_hours": 1, "price_per_hour_fen": PRICE_FEN, "cap_fen": PRICE_FEN * 24}
    with transaction.atomic():
        people = get_user_model().objects.bulk_create(
            [
                get_user_model()(username=f"bench-{tag}-{i}", password="!unusable")
                for i in range(1 if one_user else count)
            ]
        )
        Wallet.objects.bulk_create([Wallet(user=u, balance_fen=wallet_fen * (count // len(people))) for u in people])
        users = people * count if one_user else people
        cabinet = Cabinet.objects.create(code=f"BC{tag}"[:16], name=f"bench {tag}")
        compartments = Compartment.objects.bulk_create(
            [
                Compartment(
                    cabinet=cabinet,
                    label=f"{i:06d}",
                    size=Size.M,
                    status=Compartment.Status.RESERVED,
                    reference=f"LK{tag}{i:06d}",
                )
                for i in range(count)
            ]
        )
        Order.objects.bulk_create(
            [
                Order(
                    order_no=c.reference,
                    user=user,
                    kind=Order.Kind.LOCKER_RENTAL,
                    amount_fen=PRICE_FEN,
                    compartment=c,
                    hours=1,
                    pricing=pricing,
                    expires_at=expires_at,
                )
                for c, user in zip(compartments, users, strict=True)
            ]
        )
    tokens = {user.pk: token_for(user) for user in people}
    return [(c.reference, tokens[user.pk]) for c, user in zip(compartments, users, strict=True)]


def requests_for(channel: str, rentals: list[tuple[str, str]]) -> list[tuple[dict, bytes]]:
    out = []
    for i, (order_no, token) in enumerate(rentals):
        body = {"order_no": order_no, "channel": channel}
        if channel in JSAPI:
            body["openid"] = f"o-bench-{i}"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        out.append((headers, json.dumps(body).encode()))
    return out


# --------------------------------------------------------------------------- open loop


def open_loop(calls: list[Callable[[object], None]], *, rate: float, clients: int, make_state=None) -> list[float]:
    """Run ``calls`` on a fixed schedule (call i due at start + i / rate) over ``clients`` threads; each call
    gets its thread's state (``make_state()``). Returns each call's latency in seconds from its due time (a call
    that waits for a free thread waits on the clock). A call that raises is re-raised after the run."""
    due: queue.Queue[tuple[int, float] | None] = queue.Queue()
    latencies = [0.0] * len(calls)
    failures: list[BaseException] = []

    def work() -> None:
        state = make_state() if make_state else None
        while (item := due.get()) is not None:
            i, at = item
            try:
                calls[i](state)
            except BaseException as exc:
                failures.append(exc)
            latencies[i] = time.perf_counter() - at
        if state is not None and hasattr(state, "close"):
            state.close()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start = time.perf_counter() + 0.05
    for i in range(len(calls)):
        at = start + i / rate
        pause = at - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        due.put((i, at))
    for _ in threads:
        due.put(None)
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(calls)} calls failed; first: {failures[0]!r}")
    return latencies


def http_calls(items: list[tuple[dict, bytes]], answers: list) -> list[Callable[[object], None]]:
    def call(i: int) -> Callable[[object], None]:
        def send(client: KeepAliveClient) -> None:
            headers, body = items[i]
            try:
                answers[i] = client.send("POST", PATH, headers, body)
            except (OSError, http.client.HTTPException) as exc:
                answers[i] = (-1, repr(exc).encode())

        return send

    return [call(i) for i in range(len(items))]


def floor_calls(gateway_name: str, product: str, count: int, tag: str) -> list[Callable[[object], None]]:
    """The adapter's own prepay call, straight to the sandbox (what a creation's gateway round trip costs)."""
    from django.utils import timezone

    from payments.gateways.base import PrepayRequest
    from payments.gateways.registry import get_gateway

    gateway = get_gateway(gateway_name)
    expires_at = timezone.now() + timedelta(hours=2)

    def call(i: int) -> Callable[[object], None]:
        request = PrepayRequest(
            payment_no=f"PYF{tag}{i:07d}",
            amount_fen=PRICE_FEN,
            description=f"Locker rental 1h LKF{tag}{i:06d}",
            product=product,
            expires_at=expires_at,
            notify_url="",
            openid=f"o-bench-{i}" if product == "jsapi" else None,
            client_ip="127.0.0.1",
        )
        return lambda _state: gateway.create(request)

    return [call(i) for i in range(count)]


def count_statements(channel: str, item: tuple[dict, bytes]) -> tuple[int, int]:
    """SQL statements of one creation in-process (Django test client, same settings), and how many of them
    the rate limits spent (``django_cache`` and the advisory locks: the database cache without Redis)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    headers, body = item
    with CaptureQueriesContext(connection) as captured:
        response = Client().post(
            PATH, data=body, content_type="application/json", headers={"Authorization": headers["Authorization"]}
        )
    if response.status_code != 201:
        raise SystemExit(f"FAIL: in-process {channel} creation answered {response.status_code}: {response.content!r}")
    sqls = [q["sql"] for q in captured.captured_queries]
    throttle = sum("django_cache" in sql or "advisory" in sql for sql in sqls)
    return len(sqls), throttle


def ms(values: list[float], q: float) -> float:
    return 1000 * percentile(values, q)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    return run_with_tmp("create-bench-", run, parse_args(argv))


def run(args: argparse.Namespace, tmp: Path) -> bool:
    extra_env = {
        "THROTTLE_PAYMENT_CREATE": "100000/s",  # one user per request anyway; the limits are not measured
        "JWT_ACCESS_TTL_SECONDS": "7200",
    }
    return run_against_sandbox(args, tmp, extra_env, lambda env: _run(args, env, tmp))


def _run(args: argparse.Namespace, env: dict[str, str], tmp: Path) -> bool:
    t0 = time.perf_counter()
    warmup = 2 * args.workers * args.threads
    plan: dict[tuple[int, str], list[tuple[dict, bytes]]] = {}
    warm: dict[str, list[tuple[dict, bytes]]] = {}
    for index, channel in enumerate(args.channels):
        wallet_fen = PRICE_FEN if channel == "wallet" else 0
        short = f"C{index}"
        warm[channel] = requests_for(channel, create_rentals(f"{short}w", warmup, wallet_fen=wallet_fen))
        for rate in args.rates:
            count = max(1, round(rate * args.seconds))
            plan[rate, channel] = requests_for(channel, create_rentals(f"{short}{rate}", count, wallet_fen=wallet_fen))
    total = sum(len(v) for v in plan.values())
    print(f"setup: {total} rentals (+ warm-up) in {time.perf_counter() - t0:.1f}s")

    statements = {c: count_statements(c, warm[c].pop()) for c in args.channels}
    print(
        "SQL statements per creation (of which the rate limits): "
        + ", ".join(f"{c} {n} ({t})" for c, (n, t) in statements.items())
    )

    # the floor, from this process, before gunicorn starts (the same sandbox, the same schedule)
    floors: dict[tuple[int, tuple[str, str]], list[float]] = {}
    routes = {route for c in args.channels if (route := CHANNELS[c])} | {REFERENCE_FLOOR}
    for n, route in enumerate(sorted(routes)):
        open_loop(floor_calls(*route, count=10, tag=f"w{n}"), rate=50, clients=4)  # keys loaded, connection open
        for rate in args.rates:
            count = max(1, round(rate * args.seconds))
            calls = floor_calls(*route, count=count, tag=f"{n}r{rate}")
            floors[rate, route] = open_loop(calls, rate=rate, clients=args.clients)

    gunicorn = Gunicorn(
        env={**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prometheus")},  # gunicorn's metrics, not this process's
        workers=args.workers,
        threads=args.threads,
        log_path=tmp / "gunicorn.log",
        product_config=True,
    )
    gunicorn.start()
    ok = True
    results: dict[tuple[int, str], list[float]] = {}
    cpu: dict[tuple[int, str], dict[str, float]] = {}  # CPU seconds per creation, by part
    try:
        for channel in args.channels:  # every worker thread builds its adapters before the measured runs
            answers: list = [None] * len(warm[channel])
            open_loop(http_calls(warm[channel], answers), rate=20, clients=args.clients, make_state=client_of(gunicorn))
            ok &= check(f"warm-up {channel}", answers)
        for rate in args.rates:
            for channel in args.channels:
                items = plan[rate, channel]
                answers = [None] * len(items)
                meter = CpuMeter(gunicorn.pids(), db_backend_pids(args.dbname))
                client_cpu = time.process_time()
                meter.start()
                latencies = open_loop(
                    http_calls(items, answers), rate=rate, clients=args.clients, make_state=client_of(gunicorn)
                )
                meter.stop()
                ok &= check(f"{channel} at {rate}/s", answers)
                results[rate, channel] = latencies
                cpu[rate, channel] = cpu_parts(meter, time.process_time() - client_cpu, len(items))
    finally:
        gunicorn.stop()
    ok &= verify_payments(args, plan)

    worst: tuple[float, float, float] = (0.0, 0.0, 0.0)  # ratio, p99, floor p99 at the top rate
    cores = os.cpu_count() or 1
    for rate in args.rates:
        print(f"\n{rate} requests/s, {args.seconds:g}s per channel, gunicorn {args.workers}x{args.threads}:")
        print(
            f"  {'channel':<14} {'p50 ms':>8} {'p99 ms':>8} {'floor p50':>10} {'floor p99':>10} {'p99/floor':>10}"
            f"   CPU ms per creation: gunicorn + postgres + client + rest (sandbox) = total"
        )
        for channel in args.channels:
            lat = results[rate, channel]
            floor = floors[rate, CHANNELS[channel] or REFERENCE_FLOOR]
            ratio = ms(lat, 99) / ms(floor, 99)
            parts = cpu[rate, channel]
            note = "" if CHANNELS[channel] else "  (no gateway call: beside WeChat Native's floor)"
            print(
                f"  {channel:<14} {ms(lat, 50):8.1f} {ms(lat, 99):8.1f} {ms(floor, 50):10.1f} {ms(floor, 99):10.1f} "
                f"{ratio:10.2f}   {parts['app']:.1f} + {parts['pg']:.1f} + {parts['client']:.1f} + {parts['rest']:.1f}"
                f" = {parts['total']:.1f}{note}"
            )
            if rate == max(args.rates) and ratio > worst[0]:
                worst = (ratio, ms(lat, 99), ms(floor, 99))
    top = [cpu[max(args.rates), channel]["total"] for channel in args.channels]
    cpu_ms = sum(top) / len(top)
    print(
        f"\nCPU: a creation costs {cpu_ms:.1f} ms of the machine's CPU (mean over the channels at {max(args.rates)}/s);"
        f" {cores} cores are all spent at {1000 * cores / cpu_ms:.0f} creations/s, after which requests queue"
    )
    print(
        f"RESULT rps={max(args.rates)} worst_p99_ms={worst[1]:.1f} floor_p99_ms={worst[2]:.1f} "
        f"worst_ratio={worst[0]:.2f} cpu_ms={cpu_ms:.1f} cpu_bound_rps={1000 * cores / cpu_ms:.0f}"
    )
    return ok


def cpu_parts(meter: CpuMeter, client_cpu: float, n: int) -> dict[str, float]:
    """CPU milliseconds per creation of gunicorn, its PostgreSQL backends, this process (the client) and the rest
    of the machine (the sandbox, mostly), from ``meter``'s /proc readings over the run."""
    app = meter.after[0] - meter.before[0]
    pg = meter.after[1] - meter.before[1]
    busy = meter.after[2] - meter.before[2]
    rest = max(0.0, busy - app - pg - client_cpu)
    parts = {"app": app, "pg": pg, "client": client_cpu, "rest": rest}
    parts = {k: 1000 * v / n for k, v in parts.items()}
    return {**parts, "total": sum(parts.values())}


def client_of(gunicorn: Gunicorn) -> Callable[[], KeepAliveClient]:
    return lambda: KeepAliveClient(gunicorn.base_url)


def check(what: str, answers: list) -> bool:
    bad = [(i, a) for i, a in enumerate(answers) if a is None or a[0] != 201]
    if bad:
        i, answer = bad[0]
        print(f"FAIL {what}: {len(bad)} answers not 201; first #{i}: {answer!r:.300}")
    return not bad


def verify_payments(args: argparse.Namespace, plan: dict) -> bool:
    """One payment per measured request: pending (prepay stored), succeeded for the wallet."""
    from payments.models import Payment

    ok = True
    for channel in args.channels:
        want = sum(len(items) for (_, c), items in plan.items() if c == channel) + 2 * args.workers * args.threads
        # (warm-up: one of them made in-process, to count its SQL)
        status = Payment.Status.SUCCEEDED if channel == "wallet" else Payment.Status.PENDING
        payments = Payment.objects.filter(channel=channel)
        done = payments.filter(status=status)
        got = (done if channel == "wallet" else done.exclude(prepay={})).count()
        if got != want or payments.count() != want:
            print(f"FAIL {channel}: {got} {status} payments of {payments.count()} (expected {want})")
            ok = False
    return ok


if __name__ == "__main__":
    sys.exit(main())
