"""One hot wallet, C concurrent clients paying rentals through the API, against pgbench hot-row updates.

    .venv/bin/python bench/wallet_contention.py [--m 2000] [--concurrency 16] [--workers 4] [--threads 1]
                                                [--fund-ratio 0.8] [--pgbench-seconds 10] [--dbname locker_bench_wallet]

1. Recreates its own database on the embedded PostgreSQL and migrates it (no sandbox: the wallet channel never
   calls a gateway).
2. Setup (not measured): one user, one price plan, one cabinet with a compartment per order, the rental orders
   created through ``orders.services.order_create_rental``, the wallet funded through ``wallets.services.wallet_credit``
   with enough for ``floor(fund_ratio * M)`` of the M measured orders (plus the probe and warm-up orders, plus half a
   price so the balance never lands on 0 by accident), and a JWT (``core.jwt_auth.token_for``).
3. In-process probe (not measured): a few payments through Django's test client, counting the SQL of one payment and
   timing how long the wallet row lock is held (from ``SELECT ... wallets_wallet ... FOR UPDATE`` to COMMIT).
4. Measured: gunicorn (``config.wsgi``, DEBUG off, persistent connections), C keep-alive clients
   ``POST /api/v1/payments/ {order_no, channel: "wallet"}``, one order each. Answers must be 201 or
   402 ``insufficient_balance``; nothing else is accepted.
5. Correctness (fails loudly, exit 1): balance >= 0, balance == sum(ledger), the ledger chain is unbroken,
   succeeded payments == ledger debits == floor(funding / price), no order paid twice, every 201 is a paid order
   and every 402 an untouched one. ``overdrafts`` counts the violations and must be 0.
6. Framework overhead, on the same gunicorn at the same concurrency: the same M payments without the hot row
   (C users, each client's requests for a wallet of its own: ``contention cost`` = hot / uncontended payments/s is
   what the hot row costs with the framework's share equal in both), ``GET /healthz`` (one ``SELECT 1``, no auth)
   and an authenticated ``GET /api/v1/lockers/quote/`` (JWT + user + compartment + price plan reads, no write).
7. Baseline: ``pgbench -n -f`` of ``UPDATE bench_wallet SET balance = balance - 1 WHERE id = 1`` (one hot row)
   with ``-c C``, in two halves before and after the payments (the load of a shared machine drifts).

``payments_per_s`` is successful payments per second of the phase in which the wallet still had money
(start to the last 201); the 402 phase is reported separately. The last line is
``RESULT payments_per_s=<x> overdrafts=<n> pgbench_tps=<y> ratio=<x/y>``.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    CpuMeter,
    Gunicorn,
    bench_env,
    check_bench_dbname,
    db_backend_pids,
    drop_database,
    hold_bench_lock,
    http_load,
    latency_summary,
    pgbench_script_tps,
    recreate_database,
    run_with_tmp,
    setup_django,
)

PAY_PATH = "/api/v1/payments/"
PRICE_FEN = 300  # per hour, 1 hour rentals
PROBE_COUNT = 6  # payments paid in-process before the run (SQL count, lock hold time)
HOT_ROW_SCRIPT = "UPDATE bench_wallet SET balance = balance - 1 WHERE id = 1;\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--m", type=int, default=2000, help="rental orders posted in the measured run")
    parser.add_argument("--concurrency", "-c", type=int, default=16, help="concurrent HTTP clients (and pgbench -c)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker (>1: gthread worker)")
    parser.add_argument("--fund-ratio", type=float, default=0.8, help="share of the M orders the wallet can pay")
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    parser.add_argument("--pgbench-jobs", type=int, default=2)
    parser.add_argument("--dbname", default="locker_bench_wallet", help="must contain 'bench'; dropped and recreated")
    parser.add_argument("--show-queries", action="store_true", help="print the SQL of one payment")
    parser.add_argument("--profile", type=int, default=0, metavar="K", help="also cProfile K in-process payments")
    parser.add_argument("--profile-lines", type=int, default=25, help="rows of each cProfile table")
    parser.add_argument("--drop", action="store_true", help="drop the bench database at the end")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temporary folder (gunicorn log)")
    args = parser.parse_args(argv)
    if args.m < 10 or args.concurrency < 1 or args.workers < 1 or args.threads < 1 or args.pgbench_seconds < 1:
        parser.error("--m must be >= 10; --concurrency, --workers, --threads and --pgbench-seconds positive")
    if not 0 < args.fund_ratio < 1:
        parser.error("--fund-ratio must be between 0 and 1 (some payments must be refused)")
    check_bench_dbname(args.dbname)
    return args


# --------------------------------------------------------------------------- setup (not measured)


def create_fixture(total_orders: int, name: str = "payer") -> tuple:
    """One user, a price plan, a cabinet of ``total_orders`` compartments and one pending rental on each."""
    from django.contrib.auth import get_user_model

    from lockers.models import Cabinet, Compartment, PricePlan, Size
    from orders.services import order_create_rental

    user = get_user_model().objects.create(username=f"bench-wallet-{name}", password="!bench-unusable")
    PricePlan.objects.update_or_create(
        size=Size.M,
        defaults={"price_per_hour_fen": PRICE_FEN, "min_hours": 1, "cap_fen": PRICE_FEN * 24, "is_active": True},
    )
    cabinet = Cabinet.objects.create(code=f"BENCH-{name.upper()}", name="bench cabinet")
    compartments = Compartment.objects.bulk_create(
        [Compartment(cabinet=cabinet, label=f"{i:06d}", size=Size.M) for i in range(total_orders)]
    )
    orders = [order_create_rental(user=user, compartment_id=c.pk, hours=1) for c in compartments]
    prices = {o.amount_fen for o in orders}
    if prices != {PRICE_FEN}:
        raise SystemExit(f"FAIL: unexpected order amounts {prices}")
    return user, orders


def fund_wallet(user, amount_fen: int) -> None:
    from core.audit import Actor
    from wallets.models import WalletTransaction
    from wallets.services import wallet_credit

    wallet_credit(
        user_id=user.pk,
        amount_fen=amount_fen,
        type=WalletTransaction.Type.TOPUP,
        reference="BENCH-FUNDING",
        actor=Actor.system("bench"),
    )


def create_spread_fixture(count: int, clients: int) -> list[tuple[str, str]]:
    """The same payments without the hot row: ``clients`` users, each with its own funded wallet and its share of
    ``count`` rentals. Returns (order_no, JWT) interleaved user by user, so that concurrent requests are for
    different wallets."""
    from core.jwt_auth import token_for

    per_user = -(-count // clients)
    shares = []
    for i in range(clients):
        user, orders = create_fixture(per_user, name=f"spread{i:02d}")
        fund_wallet(user, per_user * PRICE_FEN)
        shares.append([(o.order_no, token_for(user)) for o in orders])
    return [share[k] for k in range(per_user) for share in shares][:count]


def verify_spread(items: list[tuple[str, str]], statuses: list[int]) -> list[str]:
    """Every spread payment paid (201), each wallet's balance == its ledger, nothing overdrawn."""
    from django.db.models import Sum

    from orders.models import Order
    from wallets.models import Wallet

    problems = [f"spread #{i}: HTTP {s}" for i, s in enumerate(statuses) if s != 201][:5]
    order_nos = [no for no, _ in items]
    paid = Order.objects.filter(order_no__in=order_nos, status=Order.Status.PAID).count()
    if paid != len(order_nos):
        problems.append(f"spread: {paid} of {len(order_nos)} orders paid")
    for wallet in Wallet.objects.filter(user__username__startswith="bench-wallet-spread").annotate(
        ledger=Sum("transactions__amount_fen")
    ):
        if wallet.balance_fen < 0 or wallet.balance_fen != wallet.ledger:
            problems.append(f"spread wallet {wallet.pk}: balance {wallet.balance_fen}, ledger {wallet.ledger}")
    return problems


def create_hot_row_table() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_wallet")
        cursor.execute("CREATE TABLE bench_wallet (id integer PRIMARY KEY, balance bigint NOT NULL)")
        cursor.execute("INSERT INTO bench_wallet VALUES (1, 1000000000000)")


# --------------------------------------------------------------------------- in-process probe


def _normalise(sql: str) -> str:
    sql = re.sub(r"\s+", " ", sql)
    return re.sub(r'SAVEPOINT "[^"]+"', 'SAVEPOINT "s"', sql)


def probe_payments(order_nos: list[str], token: str, *, show: bool) -> dict:
    """Pay ``order_nos`` serially through Django's test client; per payment: the SQL, the statements run while the
    wallet row is locked, and how long it stays locked (lock statement start to COMMIT end)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    connection.ensure_connection()
    runs = []
    for order_no in order_nos:
        marks: list[tuple[str, float, float]] = []

        def wrapper(execute, sql, params, many, context, marks=marks):
            start = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                marks.append((sql, start, time.perf_counter()))

        real_commit = connection._commit
        commits: list[tuple[float, float]] = []

        def timed_commit(real_commit=real_commit, commits=commits):
            start = time.perf_counter()
            try:
                return real_commit()
            finally:
                commits.append((start, time.perf_counter()))

        connection._commit = timed_commit
        try:
            with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(wrapper):
                t0 = time.perf_counter()
                response = client.post(
                    PAY_PATH,
                    data={"order_no": order_no, "channel": "wallet"},
                    content_type="application/json",
                    headers={"Authorization": f"Bearer {token}"},
                )
                wall = time.perf_counter() - t0
        finally:
            del connection._commit
        if response.status_code != 201:
            raise SystemExit(f"FAIL: in-process payment answered {response.status_code}: {response.content!r}")
        sqls = [_normalise(q["sql"]) for q in captured.captured_queries]
        lock_at = next(
            i for i, (sql, _, _) in enumerate(marks) if '"wallets_wallet"' in sql and "FOR UPDATE" in sql.upper()
        )
        lock_start = marks[lock_at][1]
        commit_start, commit_end = commits[-1] if commits else (marks[-1][2], marks[-1][2])
        lock_index = next(i for i, sql in enumerate(sqls) if '"wallets_wallet"' in sql and "FOR UPDATE" in sql.upper())
        runs.append(
            {
                "sql": sqls,
                "lock_index": lock_index,
                # statements after the locking SELECT, before the COMMIT that releases the lock
                "under_lock": sum(1 for _, start, _ in marks[lock_at + 1 :] if start < commit_start),
                "lock_ms": 1000 * (commit_end - lock_start),
                "commit_ms": 1000 * (commit_end - commit_start),
                "wall_ms": 1000 * wall,
                "sql_ms": 1000 * sum(end - start for _, start, end in marks),
            }
        )
    steady = runs[1:] or runs  # the first one warms caches
    first = steady[0]
    if show:
        print("SQL of one wallet payment (L> = takes the wallet row lock, >> = runs while it is held):")
        for i, sql in enumerate(first["sql"]):
            mark = "L>" if i == first["lock_index"] else (">>" if i > first["lock_index"] else "  ")
            print(f"  {mark} {i + 1:2d}. {sql[:150]}")
    return {
        "queries": len(first["sql"]),
        "same_every_time": len({len(r["sql"]) for r in steady}) == 1,
        "kinds": dict(collections.Counter(s.split(" ", 1)[0].upper() for s in first["sql"])),
        "under_lock": first["under_lock"],
        "lock_ms": statistics.median(r["lock_ms"] for r in steady),
        "commit_ms": statistics.median(r["commit_ms"] for r in steady),
        "wall_ms": statistics.median(r["wall_ms"] for r in steady),
        "sql_ms": statistics.median(r["sql_ms"] for r in steady),
    }


def profile_payments(order_nos: list[str], token: str, *, lines: int) -> str:
    """cProfile of serial in-process payments (the app's Python; PostgreSQL's time shows as waits in psycopg)."""
    import cProfile
    import io
    import pstats

    from django.test import Client

    client = Client()
    profiler = cProfile.Profile()
    profiler.enable()
    for order_no in order_nos:
        response = client.post(
            PAY_PATH,
            data={"order_no": order_no, "channel": "wallet"},
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.status_code != 201:
            raise SystemExit(f"FAIL: profiled payment answered {response.status_code}: {response.content!r}")
    profiler.disable()
    buf = io.StringIO()
    stats = pstats.Stats(profiler, stream=buf).strip_dirs()
    stats.sort_stats("cumulative").print_stats(lines)
    stats.sort_stats("tottime").print_stats(lines)
    return buf.getvalue()


# --------------------------------------------------------------------------- correctness


def verify(*, user, funding: int, price: int, answers: dict[str, int], pre_paid: list[str]) -> list[str]:
    """What is wrong with the money after the run (empty: nothing). ``answers``: order_no -> HTTP status."""
    from django.db.models import Count, Q, Sum

    from lockers.models import Compartment
    from orders.models import Order
    from payments.models import Payment
    from wallets.models import Wallet, WalletTransaction

    problems: list[str] = []
    wallet = Wallet.objects.get(user=user)
    ledger = list(WalletTransaction.objects.filter(wallet=wallet).order_by("id"))
    expected_paid = funding // price

    if wallet.balance_fen < 0:
        problems.append(f"negative balance {wallet.balance_fen}")
    ledger_sum = sum(t.amount_fen for t in ledger)
    if wallet.balance_fen != ledger_sum:
        problems.append(f"balance {wallet.balance_fen} != sum of the ledger {ledger_sum}")
    running = 0
    for tx in ledger:
        if tx.balance_before_fen != running or tx.balance_after_fen != running + tx.amount_fen:
            problems.append(f"ledger chain broken at {tx.pk} ({tx.balance_before_fen} after {running})")
            break
        running = tx.balance_after_fen
    debits = [t for t in ledger if t.type == WalletTransaction.Type.PAYMENT]
    succeeded = Payment.objects.filter(order__user=user, channel="wallet", status=Payment.Status.SUCCEEDED)
    if succeeded.count() != len(debits) or len(debits) != expected_paid:
        problems.append(
            f"succeeded payments {succeeded.count()}, ledger debits {len(debits)}, "
            f"floor(funding / price) = {expected_paid}: must all be equal"
        )
    if any(t.amount_fen != -price for t in debits):
        problems.append("a debit of another amount than the price")
    if set(succeeded.values_list("payment_no", flat=True)) != {t.reference for t in debits}:
        problems.append("ledger debits and succeeded payments do not match one to one")
    twice = Order.objects.annotate(n=Count("payments", filter=Q(payments__status="succeeded"))).filter(n__gt=1)
    if twice.exists():
        problems.append(f"{twice.count()} orders paid twice")
    stray = Payment.objects.exclude(status=Payment.Status.SUCCEEDED).count()
    if stray:
        problems.append(f"{stray} payments not succeeded (a refused payment must leave nothing behind)")
    if wallet.balance_fen != funding - expected_paid * price:
        problems.append(f"balance {wallet.balance_fen} != funding - paid = {funding - expected_paid * price}")

    status_of = dict(Order.objects.filter(user=user).values_list("order_no", "status"))
    paid_by_api = {no for no, status in answers.items() if status == 201}
    refused = {no for no, status in answers.items() if status == 402}
    not_paid = [no for no in paid_by_api | set(pre_paid) if status_of.get(no) != Order.Status.PAID]
    if not_paid:
        problems.append(f"{len(not_paid)} orders answered 201 but not paid, e.g. {not_paid[:3]}")
    touched = [no for no in refused if status_of.get(no) != Order.Status.PENDING_PAYMENT]
    if touched:
        problems.append(f"{len(touched)} orders answered 402 but not pending any more, e.g. {touched[:3]}")
    paid_total = sum(1 for s in status_of.values() if s == Order.Status.PAID)
    if paid_total != expected_paid:
        problems.append(f"{paid_total} orders paid, expected {expected_paid}")
    occupied = Compartment.objects.filter(status=Compartment.Status.OCCUPIED).count()
    if occupied != expected_paid:
        problems.append(f"{occupied} compartments occupied, expected {expected_paid}")
    spread = Q(wallet__user__username__startswith="bench-wallet-spread")  # the uncontended run's own wallets
    total = WalletTransaction.objects.exclude(spread).aggregate(s=Sum("amount_fen"))["s"]
    if total != wallet.balance_fen:
        problems.append(f"ledger total {total} across wallets != the one wallet's balance")
    return problems


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    return run_with_tmp("wallet-bench-", run, parse_args(argv))


def run(args: argparse.Namespace, tmp: Path) -> bool:
    env = bench_env(dbname=args.dbname, sandbox_dir=tmp / "sandbox", work_dir=tmp)
    env["SANDBOX_ENABLED"] = "false"  # the wallet channel never calls a gateway
    env["ORDER_EXPIRY_SECONDS"] = "7200"  # no order may expire during a slow run
    setup_django(env)

    from django.conf import settings

    from core.embedded_pg import ensure_server

    server = ensure_server(Path(settings.EMBEDDED_PG_DIR))
    lock = hold_bench_lock(server, args.dbname)
    try:
        return _run(args, tmp, env, server)
    finally:
        lock.close()


def _run(args: argparse.Namespace, tmp: Path, env: dict, server) -> bool:
    from django.core.management import call_command
    from django.db import connection

    from core.jwt_auth import token_for

    t0 = time.perf_counter()
    recreate_database(server, args.dbname)
    call_command("migrate", interactive=False, verbosity=0)
    warmup = max(2 * args.concurrency, 4 * args.workers * args.threads)
    pre = PROBE_COUNT + args.profile  # paid in-process before the run
    user, orders = create_fixture(pre + warmup + args.m)
    fundable = int(args.fund_ratio * args.m)
    funding = (pre + warmup + fundable) * PRICE_FEN + PRICE_FEN // 2
    fund_wallet(user, funding)
    token = token_for(user)
    spread_items = create_spread_fixture(args.m, args.concurrency)
    create_hot_row_table()
    order_nos = [o.order_no for o in orders]
    probe_nos, profile_nos = order_nos[:PROBE_COUNT], order_nos[PROBE_COUNT:pre]
    warm_nos, timed_nos = order_nos[pre : pre + warmup], order_nos[pre + warmup :]
    print(
        f"setup: database {args.dbname} migrated, {len(orders)} rental orders of {PRICE_FEN} fen, wallet funded "
        f"with {funding} fen (pays {funding // PRICE_FEN}: {pre} in-process + {warmup} warm-up + {fundable} of "
        f"the {args.m} measured) in {time.perf_counter() - t0:.1f}s"
    )

    probe = probe_payments(probe_nos, token, show=args.show_queries)
    profile_text = profile_payments(profile_nos, token, lines=args.profile_lines) if profile_nos else ""
    connection.close()

    bench_seconds = (args.pgbench_seconds - args.pgbench_seconds // 2, args.pgbench_seconds // 2)
    opts = {"clients": args.concurrency, "jobs": args.pgbench_jobs, "work_dir": tmp}
    tps_runs = [pgbench_script_tps(server, args.dbname, HOT_ROW_SCRIPT, seconds=bench_seconds[0], **opts)]

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def pay(no: str) -> tuple[str, str, dict, bytes]:
        return ("POST", PAY_PATH, headers, json.dumps({"order_no": no, "channel": "wallet"}).encode())

    quote_path = f"/api/v1/lockers/quote/?compartment_id={orders[0].compartment_id}&hours=1"
    gunicorn = Gunicorn(env=env, workers=args.workers, threads=args.threads, log_path=tmp / "gunicorn.log")
    overhead = {}
    try:
        gunicorn.start()
        warm = http_load(gunicorn.base_url, [pay(no) for no in warm_nos], args.concurrency)
        if warm["errors"] or set(warm["statuses"]) != {201}:
            print(f"FAIL during warm-up: {collections.Counter(warm['statuses'])} {warm['errors'][:5]}")
            print(gunicorn.log_tail())
            return False
        meter = CpuMeter(gunicorn.pids(), db_backend_pids(args.dbname))
        connection.close()
        meter.start()
        result = http_load(gunicorn.base_url, [pay(no) for no in timed_nos], args.concurrency)
        meter.stop()
        # the hot wallet's books are checked now, before the uncontended run adds wallets and payments
        answers = dict(zip(timed_nos, result["statuses"], strict=True))
        pre_paid = [*probe_nos, *profile_nos, *warm_nos]
        violations = verify(user=user, funding=funding, price=PRICE_FEN, answers=answers, pre_paid=pre_paid)
        connection.close()
        spread = http_load(
            gunicorn.base_url,
            [("POST", PAY_PATH, {**headers, "Authorization": f"Bearer {jwt}"}, pay(no)[3]) for no, jwt in spread_items],
            args.concurrency,
        )
        for name, path, auth in (("healthz", "/healthz", {}), ("quote", quote_path, headers)):
            items = [("GET", path, auth, None)] * args.m
            http_load(gunicorn.base_url, items[:warmup], args.concurrency)
            overhead[name] = http_load(gunicorn.base_url, items, args.concurrency)
    finally:
        gunicorn.stop()

    # ---- what came back
    statuses = result["statuses"]
    counts = collections.Counter(statuses)
    problems: list[str] = []
    for i, (status, body) in enumerate(zip(statuses, result["bodies"], strict=True)):
        if status == 402:
            try:
                code = json.loads(body)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = None
            if code != "insufficient_balance":
                problems.append(f"#{i}: 402 with {body[:200]!r}")
        elif status != 201:
            problems.append(f"#{i}: HTTP {status} {body[:200]!r}")
    problems += result["errors"]
    for name, res in overhead.items():
        if res["errors"] or set(res["statuses"]) != {200}:
            problems.append(f"overhead run {name}: {collections.Counter(res['statuses'])} {res['errors'][:3]}")
    problems += spread["errors"] + verify_spread(spread_items, spread["statuses"])
    if counts[201] != fundable or counts[402] != args.m - fundable:
        violations.append(f"answers {dict(counts)}: expected {fundable} x 201 and {args.m - fundable} x 402")
    connection.close()

    if bench_seconds[1]:
        tps_runs.append(pgbench_script_tps(server, args.dbname, HOT_ROW_SCRIPT, seconds=bench_seconds[1], **opts))
    tps = sum(t * s for t, s in zip(tps_runs, bench_seconds, strict=False)) / sum(bench_seconds[: len(tps_runs)])
    if args.drop:
        drop_database(server, args.dbname)

    if problems or violations:
        print("FAIL: the benchmark run is not correct:\n  " + "\n  ".join([*violations, *problems][:30]))
        print(gunicorn.log_tail())
        print(f"RESULT payments_per_s=0 overdrafts={len(violations)} pgbench_tps={tps:.2f} ratio=0")
        return False

    # ---- figures
    elapsed = result["elapsed"]
    ok_times = [t for t, s in zip(result["finished"], statuses, strict=True) if s == 201]
    paying_phase = max(ok_times)
    per_s = counts[201] / paying_phase
    refused_phase = elapsed - paying_phase
    ok_lat = [lat for lat, s in zip(result["latencies"], statuses, strict=True) if s == 201]
    no_lat = [lat for lat, s in zip(result["latencies"], statuses, strict=True) if s == 402]
    kinds = ", ".join(f"{k} {v}" for k, v in probe["kinds"].items())
    print()
    print(
        f"payments           {args.m} orders (+{warmup} warm-up), {args.concurrency} concurrent keep-alive clients, "
        f"one hot wallet funded for {fundable}"
    )
    print(
        f"gunicorn           {args.workers} workers x {args.threads} threads "
        f"({'gthread' if args.threads > 1 else 'sync'}), DEBUG off, CONN_MAX_AGE 3600"
    )
    print(
        f"answers            {counts[201]} x 201 in the first {paying_phase:.2f}s, then {counts[402]} x 402 "
        f"insufficient_balance in {refused_phase:.2f}s (all {elapsed:.2f}s)"
    )
    print(f"throughput         {per_s:.2f} payments/s while the wallet had money; {args.m / elapsed:.2f} answers/s")
    print(f"latency ms 201     {latency_summary(ok_lat)}")
    if no_lat:
        print(f"latency ms 402     {latency_summary(no_lat)}")
    cpu = meter.report(elapsed=elapsed, n=args.m, client_cpu=result["client_cpu"], unit="answer")
    print(f"CPU during run     {cpu}")
    print(
        "correctness        overdrafts 0: balance >= 0, balance == sum(ledger), ledger chain unbroken, "
        f"{counts[201] + pre + warmup} succeeded payments == debits == floor(funding / price), "
        "no order paid twice, 402s left nothing behind"
    )
    print(
        f"SQL / payment      {probe['queries']} statements ({kinds})"
        + ("" if probe["same_every_time"] else " [varies]")
        + f"; {probe['under_lock']} more run after the wallet row is locked, before the COMMIT that releases it"
    )
    print(
        f"wallet lock held   {probe['lock_ms']:.2f} ms per payment in-process, serial, uncontended "
        f"(COMMIT {probe['commit_ms']:.2f} ms; whole request {probe['wall_ms']:.2f} ms of which SQL "
        f"{probe['sql_ms']:.2f} ms) -> at most ~{1000 / probe['lock_ms']:.0f} payments/s through one wallet"
    )
    for name, label in (("healthz", "GET /healthz"), ("quote", "GET quote (JWT)")):
        res = overhead[name]
        rate = len(res["statuses"]) / res["elapsed"]
        print(
            f"overhead {name:9s} {label}: {rate:.2f} req/s at -c {args.concurrency} "
            f"(ratio to pgbench {rate / tps:.3f}; p50 {latency_summary(res['latencies']).split()[1]} ms)"
        )
    if profile_text:
        print(f"cProfile of {len(profile_nos)} in-process payments:")
        print(profile_text)
    halves = " / ".join(f"{t:.2f}" for t in tps_runs)
    print(
        f"pgbench hot row    {tps:.2f} tps (-n -f 'UPDATE bench_wallet ... WHERE id = 1' -c {args.concurrency} "
        f"-j {args.pgbench_jobs}, {args.pgbench_seconds}s: {halves} before / after)"
    )
    quote_rate = len(overhead["quote"]["statuses"]) / overhead["quote"]["elapsed"]
    spread_rate = len(spread_items) / spread["elapsed"]
    print(
        f"uncontended        {spread_rate:.2f} payments/s: the same {len(spread_items)} payments through the same "
        f"gunicorn at -c {args.concurrency}, each client's user with a wallet of its own (no hot row; "
        f"p50 {latency_summary(spread['latencies']).split()[1]} ms)"
    )
    print(
        f"contention cost    hot wallet / uncontended = {per_s / spread_rate:.3f}: what one hot wallet row costs "
        "with the framework overhead (the same in both runs) taken out"
    )
    print(f"ratio              {per_s / tps:.3f} (target >= 0.5)")
    print(
        f"vs framework       payments/s = {per_s / quote_rate:.3f} of the authenticated GET rate; that GET alone "
        f"reaches {quote_rate / tps:.3f} of pgbench, the bare GET /healthz "
        f"{len(overhead['healthz']['statuses']) / overhead['healthz']['elapsed'] / tps:.3f}"
    )
    print(f"bench database     {args.dbname} {'dropped' if args.drop else 'kept for inspection'}")
    print(f"RESULT payments_per_s={per_s:.2f} overdrafts=0 pgbench_tps={tps:.2f} ratio={per_s / tps:.3f}")
    return True


if __name__ == "__main__":
    sys.exit(main())
