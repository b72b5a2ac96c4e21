"""WeChat payment notifications per second through the real web stack, against pgbench on the same database.

    .venv/bin/python bench/notify_throughput.py [--n 2000] [--concurrency 8] [--workers 3] [--threads 1]
                                                [--pgbench-seconds 10] [--dbname locker_bench] [--profile 0]
                                                [--peer ../shared/peer]

1. Recreates its own database (``locker_bench`` by default) on the embedded PostgreSQL and migrates it;
   generates its own sandbox keys in a temporary folder (no sandbox server is needed).
2. Creates N pending WeChat Native payments of wallet top-up orders (bulk inserts, not measured),
   one user and wallet each, and pre-builds their signed, encrypted TRANSACTION.SUCCESS
   notifications (not measured).
3. Counts the SQL of one notification in-process (Django test client), then starts gunicorn
   (``config.wsgi``, DEBUG off, persistent connections), warms it up, and posts the N notifications
   with C concurrent keep-alive clients. Every answer must be 204, and afterwards every payment
   must be succeeded, every order paid and every wallet credited once: otherwise it fails (exit 1).
4. Stops gunicorn and runs ``pgbench -i -s 1`` + ``pgbench -N -c C -j 2 -T S`` on the same database.
5. ``--peer DIR``: the seed-003 peer (``DIR/seed003_cached_client.py``: verify + decrypt with the same SDK,
   one SELECT, two UPDATEs; DIR/README.md) in its own venv (``var/peer-venv-*``, created once from
   ``DIR/requirements.txt``), on its own database ``<dbname>_peer`` of the same server holding the same
   pending payments, under the same gunicorn flags, sent the same signed notifications by the same client
   right after ours.

The last line is ``RESULT notify_per_s=<x> pgbench_tps=<y> ratio=<x/y> [peer_per_s=<p> peer_ratio=<x/p>
peer_pg_cpu_ms=<ms>] pg_cpu_ms=<ms>`` (PostgreSQL backends' CPU per notification, from /proc). The bench
database is left for inspection (it is dropped and recreated by the next run; ``--drop`` drops it at the end).
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import http.client
import io
import itertools
import os
import pstats
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from bench._common import (
    Gunicorn,
    KeepAliveClient,
    bench_env,
    check_bench_dbname,
    hold_bench_lock,
    normalise_sql,
    percentile,
    pgbench_init,
    pgbench_tps,
    process_cpu_seconds,
    recreate_database,
    run_with_tmp,
    setup_django,
    system_cpu,
)
from bench._peer import PEER_APP, PEER_NOTIFY_PATH, peer_database, peer_env, peer_venv, peer_verify

NOTIFY_PATH = "/api/v1/payments/notify/wechat/"
CHECK_COUNT = 3  # notifications whose SQL is counted in-process


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="notifications in the measured run")
    parser.add_argument("--concurrency", "-c", type=int, default=8, help="concurrent HTTP clients (and pgbench -c)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker (>1: gthread worker)")
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    parser.add_argument(
        "--client", choices=("http.client", "requests"), default="http.client", help="HTTP client of the bench threads"
    )
    parser.add_argument("--pgbench-jobs", type=int, default=2)
    parser.add_argument("--dbname", default="locker_bench", help="must contain 'bench'; dropped and recreated")
    parser.add_argument("--profile", type=int, default=0, metavar="K", help="also cProfile K in-process notifications")
    parser.add_argument("--profile-lines", type=int, default=30, help="rows of each cProfile table")
    parser.add_argument(
        "--ceiling", action="store_true", help="also time N GET /healthz (one SELECT 1): a Django request's best"
    )
    parser.add_argument("--show-queries", action="store_true", help="print the SQL of one notification")
    parser.add_argument(
        "--peer",
        type=Path,
        metavar="DIR",
        help="also run the seed-003 peer (DIR/seed003_cached_client.py, its own venv in var/) on <dbname>_peer "
        "with the same notifications, and report peer_per_s and peer_ratio (ours / the peer's)",
    )
    parser.add_argument("--drop", action="store_true", help="drop the bench database at the end")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temporary folder (keys, gunicorn log)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.concurrency < 1 or args.workers < 1 or args.threads < 1 or args.pgbench_seconds < 1:
        parser.error("--n, --concurrency, --workers, --threads and --pgbench-seconds must be positive")
    check_bench_dbname(args.dbname)
    if args.peer is not None:
        args.peer = args.peer.resolve()
        if not (args.peer / "seed003_cached_client.py").is_file() or not (args.peer / "requirements.txt").is_file():
            parser.error(f"--peer {args.peer}: no seed003_cached_client.py and requirements.txt there")
    return args


# --------------------------------------------------------------------------- setup (not measured)


def create_pending_payments(count: int) -> list[tuple[str, int, int]]:
    """``count`` users with a wallet, each with a pending wallet top-up paid by a pending WeChat Native payment.

    Returns (payment_no, payment id, amount_fen) per payment.
    """
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from orders.models import Order
    from payments.models import Channel, Payment
    from wallets.models import Wallet

    user_model = get_user_model()
    stamp = timezone.now().strftime("%y%m%d%H%M%S")
    expires_at = timezone.now() + timedelta(hours=2)
    out: list[tuple[str, int, int]] = []
    batch = 1000
    for start in range(0, count, batch):
        idx = range(start, min(count, start + batch))
        with transaction.atomic():
            users = user_model.objects.bulk_create(
                [user_model(username=f"bench{stamp}{i:07d}", password="!bench-unusable") for i in idx]
            )
            Wallet.objects.bulk_create([Wallet(user=user) for user in users])
            orders = Order.objects.bulk_create(
                [
                    Order(
                        order_no=f"TUB{stamp}{i:08d}",
                        user=user,
                        kind=Order.Kind.WALLET_TOPUP,
                        status=Order.Status.PENDING_PAYMENT,
                        amount_fen=100 + i % 900,
                        expires_at=expires_at,
                    )
                    for i, user in zip(idx, users, strict=True)
                ]
            )
            payments = Payment.objects.bulk_create(
                [
                    Payment(
                        payment_no=f"PYB{stamp}{i:08d}",
                        order=order,
                        channel=Channel.WECHAT_NATIVE,
                        status=Payment.Status.PENDING,
                        amount_fen=order.amount_fen,
                        prepay={"code_url": f"weixin://wxpay/bizpayurl?pr=bench{i}"},
                    )
                    for i, order in zip(idx, orders, strict=True)
                ]
            )
        out.extend((p.payment_no, p.pk, p.amount_fen) for p in payments)
    return out


def build_notifications(payments: list[tuple[str, int, int]], keys: dict) -> list[tuple[dict, bytes]]:
    """Signed + encrypted TRANSACTION.SUCCESS notifications, exactly as WeChat (and the sandbox) send them."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from sandbox.wechat_crypto import build_notification_body, signed_headers

    creds = keys["credentials"]["wechat"]
    paths = keys["paths"]
    private_key = load_pem_private_key(paths["wechat_platform_private_key"].read_bytes(), None)
    apiv3_key = paths["wechat_apiv3_key"].read_text().strip()
    out = []
    for payment_no, pk, amount in payments:
        tx = {
            "appid": creds["appid"],
            "mchid": creds["mchid"],
            "out_trade_no": payment_no,
            "transaction_id": f"4200{pk:020d}",
            "trade_type": "NATIVE",
            "trade_state": "SUCCESS",
            "trade_state_desc": "支付成功",
            "bank_type": "OTHERS",
            "attach": "",
            "success_time": "2026-11-22T10:00:00+08:00",
            "payer": {"openid": f"o-bench-{pk}"},
            "amount": {"total": amount, "payer_total": amount, "currency": "CNY", "payer_currency": "CNY"},
        }
        body = build_notification_body(
            apiv3_key=apiv3_key, event_type="TRANSACTION.SUCCESS", plaintext=tx, original_type="transaction"
        )
        headers = {"Content-Type": "application/json"}
        headers.update(signed_headers(private_key, creds["public_key_id"], body))
        out.append((headers, body))
    return out


# --------------------------------------------------------------------------- in-process checks


def count_queries(notes: list[tuple[dict, bytes]], *, show: bool) -> dict:
    """SQL statements and transactions of one notification, through Django's full request handling."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    connection.ensure_connection()
    runs = []
    for headers, body in notes:
        stats = {"in_atomic": 0, "autocommit": 0, "commits": 0}

        def wrapper(execute, sql, params, many, context, stats=stats):
            stats["in_atomic" if context["connection"].in_atomic_block else "autocommit"] += 1
            return execute(sql, params, many, context)

        real_commit = connection._commit

        def counting_commit(stats=stats, real_commit=real_commit):
            stats["commits"] += 1
            return real_commit()

        connection._commit = counting_commit
        try:
            with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(wrapper):
                extra = {k: v for k, v in headers.items() if k.lower() != "content-type"}
                response = client.post(NOTIFY_PATH, data=body, content_type="application/json", headers=extra)
        finally:
            del connection._commit
        if response.status_code != 204:
            raise SystemExit(f"FAIL: in-process notification answered {response.status_code}: {response.content!r}")
        sqls = [normalise_sql(q["sql"]) for q in captured.captured_queries]
        runs.append({**stats, "queries": len(sqls), "sql": sqls})
    first = runs[0]
    kinds = collections.Counter(s.split(None, 1)[0].upper() for s in first["sql"])
    if show:
        print("SQL of one notification:")
        for i, sql in enumerate(first["sql"], 1):
            print(f"  {i:2d}. {sql[:160]}")
    return {
        "queries": first["queries"],
        "same_every_time": len({r["queries"] for r in runs}) == 1,
        "kinds": dict(kinds),
        # server transactions: each autocommit statement is one, plus each committed atomic block
        "transactions": first["autocommit"] + first["commits"],
        "autocommit": first["autocommit"],
        "commits": first["commits"],
    }


def profile_in_process(notes: list[tuple[dict, bytes]], *, lines: int) -> dict:
    """Half of ``notes`` timed plainly (wall and CPU of this process: the app's Python, not PostgreSQL's),
    the other half under cProfile."""
    from django.test import Client

    client = Client()

    def post(batch: list[tuple[dict, bytes]]) -> None:
        for headers, body in batch:
            extra = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            response = client.post(NOTIFY_PATH, data=body, content_type="application/json", headers=extra)
            if response.status_code != 204:
                raise SystemExit(f"FAIL: profiled notification answered {response.status_code}")

    from django.db import connection

    half = len(notes) // 2
    plain, profiled = notes[:half], notes[half:]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    wall, cpu, pg_cpu = time.perf_counter(), time.process_time(), process_cpu_seconds([backend])
    post(plain)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    pg_cpu = process_cpu_seconds([backend]) - pg_cpu
    profiler = cProfile.Profile()
    profiler.enable()
    post(profiled)
    profiler.disable()
    buf = io.StringIO()
    stats = pstats.Stats(profiler, stream=buf).strip_dirs()
    stats.sort_stats("cumulative").print_stats(lines)
    stats.sort_stats("tottime").print_stats(lines)
    return {
        "plain": len(plain),
        "profiled": len(profiled),
        "wall_ms": 1000 * wall / max(1, len(plain)),
        "cpu_ms": 1000 * cpu / max(1, len(plain)),
        "pg_cpu_ms": 1000 * pg_cpu / max(1, len(plain)),
        "text": buf.getvalue(),
    }


# --------------------------------------------------------------------------- the measured part


class _HttpClient(KeepAliveClient):
    """``http.client``: a fraction of the CPU ``requests`` needs per call, which matters when the clients share
    the 2 cores with the server (gunicorn's sync workers close every connection: it reconnects)."""

    def send(self, path: str, headers: dict, body: bytes) -> tuple[int, bytes]:
        return super().send("POST", path, headers, body) if body else super().send("GET", path, {}, None)


class _RequestsClient:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def send(self, path: str, headers: dict, body: bytes) -> tuple[int, bytes]:
        if body:
            response = self.session.post(self.base_url + path, data=body, headers=headers, timeout=60)
        else:
            response = self.session.get(self.base_url + path, timeout=60)
        return response.status_code, response.content

    def close(self) -> None:
        self.session.close()


CLIENTS = {"http.client": _HttpClient, "requests": _RequestsClient}


def post_all(
    base_url: str, path: str, notes: list[tuple[dict, bytes]], concurrency: int, *, client: str, expect: int = 204
) -> dict:
    """POST every notification with ``concurrency`` threads, one keep-alive connection each.

    An item without a body is sent as a GET (the ``--ceiling`` run)."""
    statuses = [0] * len(notes)
    latencies = [0.0] * len(notes)
    errors: list[str] = []
    counter = itertools.count()
    barrier = threading.Barrier(concurrency + 1)

    def work() -> None:
        conn = CLIENTS[client](base_url)
        barrier.wait()
        while (i := next(counter)) < len(notes):
            headers, body = notes[i]
            start = time.perf_counter()
            try:
                status, content = conn.send(path, headers, body)
                statuses[i] = status
                if status != expect:
                    errors.append(f"#{i}: HTTP {status} {content[:200]!r}")
            except (OSError, http.client.HTTPException, requests.RequestException) as exc:
                statuses[i] = -1
                errors.append(f"#{i}: {exc!r}")
            latencies[i] = time.perf_counter() - start
        conn.close()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    cpu_before = time.process_time()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return {
        "elapsed": elapsed,
        "statuses": collections.Counter(statuses),
        "latencies": latencies,
        "errors": errors,
        "client_cpu": time.process_time() - cpu_before,
    }


def pgbench_opts(args: argparse.Namespace, seconds: int) -> dict:
    return {"clients": args.concurrency, "jobs": args.pgbench_jobs, "seconds": seconds}


def postgres_backend_pids(dbname: str) -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(  # the app's connections (not an autovacuum worker that happens to be in the database)
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'",
            [dbname],
        )
        return [row[0] for row in cursor.fetchall()]


def db_counters(dbname: str) -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_fetched "
            "FROM pg_stat_database WHERE datname = %s",
            [dbname],
        )
        row = cursor.fetchone()
    return dict(zip(("commits", "rollbacks", "inserted", "updated", "fetched"), row, strict=True))


def verify(payments: list[tuple[str, int, int]]) -> list[str]:
    """Every payment succeeded once, every order paid, every wallet credited once: or what is wrong."""
    from django.db.models import Count, Q, Sum

    from orders.models import Order
    from payments.models import GatewayNotification, Payment, PaymentEvent
    from wallets.models import Wallet, WalletTransaction

    total = len(payments)
    amount = sum(p[2] for p in payments)
    problems = []

    def expect(what: str, got, want) -> None:
        if got != want:
            problems.append(f"{what}: {got} (expected {want})")

    expect("payments succeeded", Payment.objects.filter(status=Payment.Status.SUCCEEDED).count(), total)
    expect("payments flagged", Payment.objects.exclude(flag="").count(), 0)
    expect("orders paid", Order.objects.filter(status=Order.Status.PAID).count(), total)
    expect("'paid' payment events", PaymentEvent.objects.filter(action="paid").count(), total)
    expect("wallet top-up ledger rows", WalletTransaction.objects.filter(type="topup").count(), total)
    expect("sum of wallet balances", Wallet.objects.aggregate(s=Sum("balance_fen"))["s"], amount)
    notes = GatewayNotification.objects.aggregate(
        all=Count("id"),
        applied=Count("id", filter=Q(verified=True, duplicate=False, processed_at__isnull=False, error="")),
    )
    expect("notifications stored", notes["all"], total)
    expect("notifications applied", notes["applied"], total)
    return problems


def peer_dbname(args: argparse.Namespace) -> str:
    return f"{args.dbname}_peer"


def measure_peer(
    args: argparse.Namespace, tmp: Path, python: Path, env: dict, warmup_notes: list, timed_notes: list
) -> dict | None:
    """The seed-003 peer under the same gunicorn flags, sent the same notifications by the same client."""
    from django.db import connection

    gunicorn = Gunicorn(
        env=env,
        workers=args.workers,
        threads=args.threads,
        log_path=tmp / "peer-gunicorn.log",
        app=PEER_APP,
        python=str(python),
        cwd=args.peer,
    )
    try:
        gunicorn.start()
        warm = post_all(
            gunicorn.base_url, PEER_NOTIFY_PATH, warmup_notes, args.concurrency, client=args.client, expect=200
        )
        if warm["errors"]:
            print("FAIL during the peer's warm-up:\n  " + "\n  ".join(warm["errors"][:10]))
            print(gunicorn.log_tail())
            return None
        app_pids = gunicorn.pids()
        pg_pids = postgres_backend_pids(peer_dbname(args))
        connection.close()
        cpu0 = (process_cpu_seconds(app_pids), process_cpu_seconds(pg_pids))
        result = post_all(
            gunicorn.base_url, PEER_NOTIFY_PATH, timed_notes, args.concurrency, client=args.client, expect=200
        )
        cpu1 = (process_cpu_seconds(app_pids), process_cpu_seconds(pg_pids))
    finally:
        gunicorn.stop()
    if result["errors"]:
        print(f"FAIL: {len(result['errors'])} peer answers were not 200, e.g. " + "; ".join(result["errors"][:5]))
        print(gunicorn.log_tail())
        return None
    n = len(timed_notes)
    return {
        "per_s": n / result["elapsed"],
        "latencies": [x * 1000 for x in result["latencies"]],
        "app_cpu_ms": 1000 * (cpu1[0] - cpu0[0]) / n,
        "pg_cpu_ms": 1000 * (cpu1[1] - cpu0[1]) / n,
    }


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    return run_with_tmp("notify-bench-", run, parse_args(argv))


def run(args: argparse.Namespace, tmp: Path) -> bool:
    from sandbox.keys import ensure_keys

    keys = ensure_keys(tmp / "sandbox")
    env = bench_env(dbname=args.dbname, sandbox_dir=tmp / "sandbox", work_dir=tmp)
    # the notifications are signed before the run starts: allow a long run (verification is unchanged)
    env["WECHAT_PAY_NOTIFY_MAX_SKEW_SECONDS"] = "3600"
    setup_django(env)

    from django.conf import settings

    from core.embedded_pg import ensure_server

    server = ensure_server(Path(settings.EMBEDDED_PG_DIR))
    lock = hold_bench_lock(server, args.dbname)
    try:
        return _run(args, tmp, env, keys, server)
    finally:
        lock.close()


def _run(args: argparse.Namespace, tmp: Path, env: dict, keys: dict, server) -> bool:
    from django.core.management import call_command
    from django.db import connection

    t0 = time.perf_counter()
    recreate_database(server, args.dbname)
    call_command("migrate", interactive=False, verbosity=0)
    warmup = max(2 * args.concurrency, 4 * args.workers * args.threads)
    total = args.n + warmup + CHECK_COUNT + args.profile
    payments = create_pending_payments(total)
    notes = build_notifications(payments, keys)
    print(
        f"setup: database {args.dbname} migrated, {total} pending payments and notifications "
        f"built in {time.perf_counter() - t0:.1f}s"
    )
    peer_python = None
    if args.peer:
        peer_python = peer_venv(args.peer)
        peer_environ = peer_env(server=server, dbname=peer_dbname(args), keys=keys, work_dir=tmp)
        peer_database(
            server=server,
            dbname=peer_dbname(args),
            python=peer_python,
            peer_dir=args.peer,
            env={**os.environ, **peer_environ},
            payments=payments,
        )
        print(f"setup: peer database {peer_dbname(args)} with the same {total} pending payments")
    check_notes, rest = notes[:CHECK_COUNT], notes[CHECK_COUNT:]
    profile_notes, rest = rest[: args.profile], rest[args.profile :]
    warmup_notes, timed_notes = rest[:warmup], rest[warmup:]

    queries = count_queries(check_notes, show=args.show_queries)
    profile_report = None
    if profile_notes:
        profile_report = profile_in_process(profile_notes, lines=args.profile_lines)
    connection.close()

    # the baseline is measured in two halves, before and after the notifications, because the load
    # of a shared machine drifts: the mean of both brackets the notification run
    pgbench_init(server, args.dbname)
    bench_seconds = (args.pgbench_seconds - args.pgbench_seconds // 2, args.pgbench_seconds // 2)
    tps_runs = [pgbench_tps(server, args.dbname, **pgbench_opts(args, bench_seconds[0]))]

    before = db_counters(args.dbname)
    connection.close()
    gunicorn = Gunicorn(env=env, workers=args.workers, threads=args.threads, log_path=tmp / "gunicorn.log")
    try:
        gunicorn.start()
        warm = post_all(gunicorn.base_url, NOTIFY_PATH, warmup_notes, args.concurrency, client=args.client)
        if warm["errors"]:
            print("FAIL during warm-up:\n  " + "\n  ".join(warm["errors"][:10]))
            print(gunicorn.log_tail())
            return False
        app_pids = gunicorn.pids()
        pg_pids = postgres_backend_pids(args.dbname)
        print(f"postgres backends  {len(pg_pids)} of the app measured")
        connection.close()
        cpu0 = (process_cpu_seconds(app_pids), process_cpu_seconds(pg_pids), *system_cpu())
        result = post_all(gunicorn.base_url, NOTIFY_PATH, timed_notes, args.concurrency, client=args.client)
        cpu1 = (process_cpu_seconds(app_pids), process_cpu_seconds(pg_pids), *system_cpu())
    finally:
        gunicorn.stop()

    peer = None
    if args.peer:  # right after ours, between the two halves of the baseline, like ours
        peer = measure_peer(args, tmp, peer_python, peer_environ, warmup_notes, timed_notes)
        if peer is None:
            return False

    problems = []
    if result["errors"]:
        problems.append(f"{len(result['errors'])} answers were not 204, e.g. " + "; ".join(result["errors"][:5]))
    problems += verify(payments)
    if problems:
        print("FAIL: the benchmark run is not correct:\n  " + "\n  ".join(problems))
        print(gunicorn.log_tail())
        return False
    time.sleep(0.5)  # the app's backends have exited: their statistics are flushed
    after = db_counters(args.dbname)
    connection.close()

    ceiling = None
    if args.ceiling:  # separate server, so that the counters above are the notifications' only
        gunicorn = Gunicorn(env=env, workers=args.workers, threads=args.threads, log_path=tmp / "gunicorn.log")
        try:
            gunicorn.start()
            items = [({}, b"")] * len(timed_notes)
            post_all(gunicorn.base_url, "/healthz", items[:warmup], args.concurrency, client=args.client, expect=200)
            ceiling = post_all(gunicorn.base_url, "/healthz", items, args.concurrency, client=args.client, expect=200)
        finally:
            gunicorn.stop()
        if ceiling["errors"]:
            print("FAIL during the ceiling run:\n  " + "\n  ".join(ceiling["errors"][:10]))
            return False

    if bench_seconds[1]:
        tps_runs.append(pgbench_tps(server, args.dbname, **pgbench_opts(args, bench_seconds[1])))
    tps = sum(t * s for t, s in zip(tps_runs, bench_seconds, strict=False)) / sum(bench_seconds[: len(tps_runs)])
    if args.drop:
        import psycopg
        from psycopg import sql

        with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
            for name in (args.dbname, peer_dbname(args)) if args.peer else (args.dbname,):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    elapsed = result["elapsed"]
    per_s = len(timed_notes) / elapsed
    lat = [x * 1000 for x in result["latencies"]]
    app_cpu, pg_cpu = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    busy, wall_cpu = cpu1[2] - cpu0[2], cpu1[3] - cpu0[3]
    posted = len(warmup_notes) + len(timed_notes)
    n = len(timed_notes)
    kinds = ", ".join(f"{k} {v}" for k, v in queries["kinds"].items())
    print()
    print(
        f"notifications      {n} (+{len(warmup_notes)} warm-up), {args.concurrency} concurrent clients "
        f"with {args.client} ({'keep-alive' if args.threads > 1 else 'sync workers close each connection'})"
    )
    print(
        f"gunicorn           {args.workers} workers x {args.threads} threads "
        f"({'gthread' if args.threads > 1 else 'sync'}), DEBUG off, CONN_MAX_AGE 3600"
    )
    print(f"elapsed            {elapsed:.2f}s, all {n} answers 204, all payments succeeded / orders paid")
    print(f"throughput         {per_s:.2f} notifications/s")
    print(
        f"latency ms         p50 {percentile(lat, 50):.1f}  p95 {percentile(lat, 95):.1f}  "
        f"p99 {percentile(lat, 99):.1f}  max {max(lat):.1f}"
    )
    print(
        f"SQL / notification {queries['queries']} statements ({kinds}),"
        f" {queries['autocommit']} in autocommit + {queries['commits']} atomic blocks committed"
        f" = {queries['transactions']} transactions (+1 'SELECT 1' health check per request under gunicorn)"
        + ("" if queries["same_every_time"] else f" [varies over the first {CHECK_COUNT} notifications]")
    )
    print(
        "server side        per notification (warm-up included, health checks too): "
        f"{(after['commits'] - before['commits']) / posted:.1f} commits, "
        f"{(after['rollbacks'] - before['rollbacks']) / posted:.1f} rollbacks, "
        f"{(after['inserted'] - before['inserted']) / posted:.1f} rows inserted, "
        f"{(after['updated'] - before['updated']) / posted:.1f} updated"
    )
    if wall_cpu > 0:
        cores = wall_cpu / elapsed
        rest_cpu = max(0.0, busy - app_cpu - pg_cpu - result["client_cpu"])
        print(
            f"CPU during run     machine {100 * busy / wall_cpu:.0f}% busy of {cores:.1f} cores; per notification: "
            f"gunicorn {1000 * app_cpu / n:.2f} ms, postgres backends {1000 * pg_cpu / n:.2f} ms, "
            f"bench clients {1000 * result['client_cpu'] / n:.2f} ms, "
            f"everything else on the machine {1000 * rest_cpu / n:.2f} ms"
        )
    if profile_report:
        print(
            f"in-process, serial {profile_report['plain']} notifications: {profile_report['wall_ms']:.2f} ms wall, "
            f"{profile_report['cpu_ms']:.2f} ms CPU of the app's Python and "
            f"{profile_report['pg_cpu_ms']:.2f} ms of its PostgreSQL backend each"
        )
        print(f"cProfile of {profile_report['profiled']} more:")
        print(profile_report["text"])
    halves = " / ".join(f"{t:.2f}" for t in tps_runs)
    print(
        f"pgbench -N         {tps:.2f} tps (-c {args.concurrency} -j {args.pgbench_jobs}, "
        f"{args.pgbench_seconds}s: {halves} before / after the notifications)"
    )
    print(f"ratio              {per_s / tps:.3f} (target >= 0.25)")
    if ceiling:
        ceiling_per_s = len(timed_notes) / ceiling["elapsed"]
        print(
            f"ceiling            GET /healthz {ceiling_per_s:.2f}/s, ratio {ceiling_per_s / tps:.3f} "
            f"(p50 {percentile([x * 1000 for x in ceiling['latencies']], 50):.1f} ms)"
        )
    peer_result = ""
    if peer:
        if problems := peer_verify(server=server, dbname=peer_dbname(args), count=posted):
            print("FAIL: the peer's run is not correct:\n  " + "\n  ".join(problems))
            return False
        print(
            f"peer (seed 003)    {peer['per_s']:.2f} notifications/s ({PEER_APP}, same flags, database "
            f"{peer_dbname(args)}); p50 {percentile(peer['latencies'], 50):.1f} ms; per notification: gunicorn "
            f"{peer['app_cpu_ms']:.2f} ms, postgres backends {peer['pg_cpu_ms']:.2f} ms"
        )
        print(f"peer ratio         {per_s / peer['per_s']:.3f} ours / the peer's (target >= 0.8)")
        peer_result = (
            f" peer_per_s={peer['per_s']:.2f} peer_ratio={per_s / peer['per_s']:.3f}"
            f" peer_pg_cpu_ms={peer['pg_cpu_ms']:.2f}"
        )
    print(f"bench database     {args.dbname} {'dropped' if args.drop else 'kept for inspection'}")
    pg_ms = f" pg_cpu_ms={1000 * pg_cpu / n:.2f}"
    print(f"RESULT notify_per_s={per_s:.2f} pgbench_tps={tps:.2f} ratio={per_s / tps:.3f}{peer_result}{pg_ms}")
    return True


if __name__ == "__main__":
    sys.exit(main())
