"""A gunicorn worker's memory over many mixed requests: RSS after 10,000 and after 20,000, and the growth between.

    .venv/bin/python bench/worker_memory.py [--requests 20000] [--every 2500] [--dbname locker_bench_memory]

1. Starts the sandbox, points the gateways at it (as conftest's ``gateways`` fixture), recreates its own database on
   the embedded PostgreSQL and migrates it. DEBUG is off (it keeps every query of a request in memory).
2. Setup (not measured): one customer with pending locker rentals (and the wallet money for the wallet ones), pending
   WeChat Native payments with their signed TRANSACTION.SUCCESS notifications (``bench.notify_throughput``), one
   staff user with an admin session.
3. One gunicorn worker, sync, as production runs it otherwise (``-c python:config.gunicorn``: prometheus
   multiprocess metrics in a folder of this run). One client sends the requests in a fixed cycle of ten: payment
   creation (WeChat Native, Alipay page, Wallyt JSAPI, wallet, in turn), order and payment reads, order list, wallet,
   WeChat notifications, admin list and change pages. Every answer must be the expected status, else exit 1.
4. Prints the worker's RSS (``/proc/<pid>/status`` VmRSS) at 0 requests (after 50 of warm-up) and every
   ``--every``; the same pid throughout (a restarted worker would hide a leak: exit 1).

The last line is ``RESULT rss_10k_mb=<a> rss_20k_mb=<b> growth_mb=<b - a>`` (targets: a <= 150, growth ~ 0); with
``--requests N`` the halves are N/2 and N (the keys keep their names).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    Gunicorn,
    KeepAliveClient,
    check_bench_dbname,
    run_against_sandbox,
    run_with_tmp,
)
from bench.create_latency import PATH as CREATE_PATH
from bench.create_latency import create_rentals
from bench.notify_throughput import NOTIFY_PATH, build_notifications, create_pending_payments

CREATE_CHANNELS = ("wechat_native", "alipay_page", "wallyt_jsapi", "wallet")
WARMUP = 50


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests after the warm-up (even)")
    parser.add_argument("--every", type=int, default=2500, help="print the RSS every this many requests")
    parser.add_argument("--dbname", default="locker_bench_memory", help="must contain 'bench'; dropped, recreated")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temporary folder (keys, gunicorn log)")
    args = parser.parse_args(argv)
    if args.requests < 20 or args.requests % 2 or args.every < 1:
        parser.error("--requests must be even and >= 20, --every positive")
    check_bench_dbname(args.dbname)
    return args


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


# --------------------------------------------------------------------------- the requests


def build_cycle(total: int, tmp: Path) -> list[tuple[str, str, dict, bytes | None, int]]:
    """``total`` requests (method, path, headers, body, expected status) in a cycle of ten."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from payments.models import Payment
    from sandbox.keys import ensure_keys

    cycles = -(-total // 10)
    creations = 2 * cycles
    per_channel = -(-creations // len(CREATE_CHANNELS))
    rentals = {
        channel: create_rentals(f"M{i}", per_channel, wallet_fen=300 if channel == "wallet" else 0, one_user=True)
        for i, channel in enumerate(CREATE_CHANNELS)
    }
    notes = build_notifications(create_pending_payments(2 * cycles), ensure_keys(tmp / "sandbox"))
    staff = get_user_model().objects.create_superuser("bench-admin", password="!unusable")
    browser = Client()
    browser.force_login(staff)
    admin = {"Cookie": f"sessionid={browser.cookies['sessionid'].value}"}
    some_payment = Payment.objects.order_by("id").values_list("id", flat=True).first()

    out: list[tuple[str, str, dict, bytes | None, int]] = []
    made = 0
    for c in range(cycles):
        created = []
        for _ in range(2):
            channel = CREATE_CHANNELS[made % len(CREATE_CHANNELS)]
            order_no, token = rentals[channel][made // len(CREATE_CHANNELS)]
            made += 1
            body = {"order_no": order_no, "channel": channel}
            if channel == "wallyt_jsapi":
                body["openid"] = f"o-bench-{made}"
            auth = {"Authorization": f"Bearer {token}"}
            created.append((order_no, auth))
            out.append(
                ("POST", CREATE_PATH, {**auth, "Content-Type": "application/json"}, json.dumps(body).encode(), 201)
            )
        (order_no, auth), (order_no_2, auth_2) = created
        notify = [notes[2 * c], notes[2 * c + 1]]
        out += [
            ("GET", f"/api/v1/orders/{order_no}/", auth, None, 200),
            ("POST", NOTIFY_PATH, notify[0][0], notify[0][1], 204),
            ("GET", f"/api/v1/orders/{order_no_2}/", auth_2, None, 200),
            ("GET", "/admin/payments/payment/", admin, None, 200),
            ("GET", "/api/v1/orders/", auth, None, 200),
            ("POST", NOTIFY_PATH, notify[1][0], notify[1][1], 204),
            ("GET", "/api/v1/wallet/", auth, None, 200),
            ("GET", f"/admin/payments/payment/{some_payment}/change/", admin, None, 200),
        ]
    return out[:total]


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    return run_with_tmp("memory-bench-", run, parse_args(argv))


def run(args: argparse.Namespace, tmp: Path) -> bool:
    extra_env = {
        "THROTTLE_PAYMENT_CREATE": "100000/s",  # one customer sends them all: the limits are not measured
        "JWT_ACCESS_TTL_SECONDS": "86400",
        "WECHAT_PAY_NOTIFY_MAX_SKEW_SECONDS": "86400",  # notifications signed before the run
    }
    return run_against_sandbox(args, tmp, extra_env, lambda env: _run(args, env, tmp))


def _run(args: argparse.Namespace, env: dict[str, str], tmp: Path) -> bool:
    t0 = time.perf_counter()
    items = build_cycle(WARMUP + args.requests, tmp)
    print(f"setup: {len(items)} requests prepared in {time.perf_counter() - t0:.1f}s")

    gunicorn = Gunicorn(
        env={**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prometheus")},
        workers=1,
        threads=1,
        log_path=tmp / "gunicorn.log",
        product_config=True,
    )
    gunicorn.start()
    samples: dict[int, float] = {}
    spent: dict[str, list[float]] = {}
    failures: list[str] = []
    try:
        workers = gunicorn.pids()[1:]
        if len(workers) != 1:
            raise SystemExit(f"FAIL: expected one gunicorn worker, found {workers}")
        worker = workers[0]
        client = KeepAliveClient(gunicorn.base_url)
        start = time.perf_counter()
        for i, (method, path, headers, body, expect) in enumerate(items):
            done = i - WARMUP
            if (done >= 0 and done % args.every == 0) or done == args.requests // 2:
                samples[done] = rss_mb(worker)
                print(f"  {done:>6} requests: RSS {samples[done]:.1f} MB ({time.perf_counter() - start:.0f}s)")
            sent = time.perf_counter()
            status, answer = client.send(method, path, headers, body)
            kind = {CREATE_PATH: "create", NOTIFY_PATH: "notify"}.get(path) or f"{method} {path.split('/')[3]}"
            spent.setdefault(kind, []).append(time.perf_counter() - sent)
            if status != expect and len(failures) < 5:
                failures.append(f"#{i} {method} {path}: HTTP {status} (expected {expect}) {answer[:200]!r}")
        samples[args.requests] = rss_mb(worker)
        elapsed = time.perf_counter() - start
        print(f"  {args.requests:>6} requests: RSS {samples[args.requests]:.1f} MB ({elapsed:.0f}s)")
        print("  mean ms per request: " + ", ".join(f"{k} {1000 * sum(v) / len(v):.1f}" for k, v in spent.items()))
        if gunicorn.pids()[1:] != [worker]:
            failures.append(f"the worker was replaced: {worker} -> {gunicorn.pids()[1:]}")
        client.close()
    finally:
        gunicorn.stop()
    for failure in failures:
        print(f"FAIL {failure}")
    half, full = samples[args.requests // 2], samples[args.requests]
    print(f"RESULT rss_10k_mb={half:.1f} rss_20k_mb={full:.1f} growth_mb={full - half:.1f}")
    return not failures


if __name__ == "__main__":
    sys.exit(main())
