"""Expired pending orders reconciled against the sandbox: is the time linear in N, are queries per batch constant?

    .venv/bin/python bench/reconcile_scaling.py [--small 1000] [--large 10000] [--size 100] [--trades all|none]
                                                [--probe-batches 3] [--dbname locker_bench_reconcile]

1. Starts the sandbox (``sandbox.testing.running_sandbox``) and points the gateways at it as conftest's ``gateways``
   fixture does (SANDBOX_ENABLED, SANDBOX_DATA_DIR, WECHAT_PAY_API_BASE, ...; notifications go nowhere), then
   recreates its own database on the embedded PostgreSQL and migrates it. Everything runs in this process.
2. Per N (small, then large), setup (not measured): N (+ probe) locker rentals in ``pending_payment``, each holding a
   reserved compartment, each with one open WeChat Native payment, bulk-inserted. With ``--trades all`` (default)
   every trade is created at the sandbox through the real adapter (``gateway.create``: signed SDK call) and the
   payment is ``pending``; with ``--trades none`` the payments are ``created`` and the gateway never saw them (the
   close answers ORDER_NOT_EXIST and closes locally: same SQL, one round trip each, a cheaper answer).
3. Head probe: ``--probe-batches`` calls of ``reconcile_payments_batch`` under ``CaptureQueriesContext`` (queries per
   batch, and the time of the claiming SELECT with nothing processed yet).
4. Measured: ``reconcile_payments(now=...)`` over exactly N due payments (``now`` = one hour after the orders expired;
   ``max_batches`` raised to fit N: the default of 1000 batches stops at 100k rows). Timed per batch too, with the
   time spent in gateway round trips and in SQL (the claiming SELECT apart) summed by light wrappers.
5. Tail probe: ``--probe-batches`` more batches of fresh rows created after the measured run (the N closed rows now
   sit in front of them): queries per batch again, and the time of the claiming SELECT.
6. Correctness (fails loudly, exit 1): every order cancelled, every payment closed (none flagged or failed), every
   compartment free, an audit event per close and cancel, no error in the job's report; with ``--trades all`` no
   trade of the run left NOTPAY at the sandbox.

The last line is ``RESULT n_small=<a> n_large=<b> time_ratio=<r> queries_per_batch=<q>``; ``time_ratio`` is
time(large) / time(small) (linear: large / small, target <= 11 for 10k / 100k).
"""

from __future__ import annotations

import argparse
import collections
import re
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    bench_env,
    check_bench_dbname,
    drop_database,
    hold_bench_lock,
    recreate_database,
    run_with_tmp,
    sandbox_gateway_env,
    setup_django,
)
from bench._reconcile_probe import Meter, explain_claim, probe_batches, profile_batch

PRICE_FEN = 300
PER_CABINET = 1000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1000, help="N of the first run")
    parser.add_argument("--large", type=int, default=10000, help="N of the second run (e.g. 100000)")
    parser.add_argument("--size", type=int, default=100, help="batch size of reconcile_payments (its default: 100)")
    parser.add_argument("--probe-batches", type=int, default=3, help="batches counted before and after each run")
    parser.add_argument(
        "--trades",
        choices=("all", "none"),
        default="all",
        help="create every trade at the sandbox (all) or leave the payments 'created', unseen by the gateway (none)",
    )
    parser.add_argument(
        "--filler",
        type=int,
        default=0,
        metavar="F",
        help="afterwards, insert F closed payments and time the claiming SELECT behind them (extrapolates to 10 x N)",
    )
    parser.add_argument(
        "--repeat-small",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the small N again after the large one and use the mean (the load of a shared machine drifts)",
    )
    parser.add_argument("--create-threads", type=int, default=4, help="threads creating the sandbox trades")
    parser.add_argument("--dbname", default="locker_bench_reconcile", help="must contain 'bench'; dropped, recreated")
    parser.add_argument("--show-queries", action="store_true", help="print the SQL of one probe batch (abridged)")
    parser.add_argument("--profile", action="store_true", help="also cProfile one extra batch before each run")
    parser.add_argument("--profile-lines", type=int, default=30, help="rows of each cProfile table")
    parser.add_argument("--drop", action="store_true", help="drop the bench database at the end")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temporary folder (sandbox keys and output)")
    args = parser.parse_args(argv)
    if not 0 < args.small < args.large or args.size < 1 or args.probe_batches < 1 or args.create_threads < 1:
        parser.error("need 0 < --small < --large, and positive --size, --probe-batches, --create-threads")
    check_bench_dbname(args.dbname)
    return args


# --------------------------------------------------------------------------- setup (not measured)


def create_rows(tag: str, count: int, *, expires_at, status: str) -> list[tuple[int, str, int]]:
    """``count`` pending rentals, each holding a reserved compartment and one open WeChat Native payment.

    Returns (payment id, payment_no, order id) per row."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from lockers.models import Cabinet, Compartment, PricePlan, Size
    from orders.models import Order
    from payments.models import Channel, Payment

    user, _ = get_user_model().objects.get_or_create(username="bench-reconcile", defaults={"password": "!unusable"})
    PricePlan.objects.update_or_create(
        size=Size.M,
        defaults={"price_per_hour_fen": PRICE_FEN, "min_hours": 1, "cap_fen": PRICE_FEN * 24, "is_active": True},
    )
    pricing = {"size": "M", "hours": 1, "billed_hours": 1, "price_per_hour_fen": PRICE_FEN, "cap_fen": PRICE_FEN * 24}
    out: list[tuple[int, str, int]] = []
    for start in range(0, count, PER_CABINET):
        idx = range(start, min(count, start + PER_CABINET))
        with transaction.atomic():
            cabinet = Cabinet.objects.create(code=f"B{tag}{start // PER_CABINET:05d}", name=f"bench {tag}")
            compartments = Compartment.objects.bulk_create(
                [
                    Compartment(
                        cabinet=cabinet,
                        label=f"{i:06d}",
                        size=Size.M,
                        status=Compartment.Status.RESERVED,
                        reference=f"LK{tag}{i:08d}",
                    )
                    for i in idx
                ]
            )
            orders = Order.objects.bulk_create(
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
                    for c in compartments
                ]
            )
            payments = Payment.objects.bulk_create(
                [
                    Payment(
                        payment_no=f"PY{tag}{i:08d}",
                        order=order,
                        channel=Channel.WECHAT_NATIVE,
                        status=status,
                        amount_fen=PRICE_FEN,
                        prepay={"code_url": f"weixin://wxpay/bizpayurl?pr=b{tag}{i}"} if status == "pending" else {},
                    )
                    for i, order in zip(idx, orders, strict=True)
                ]
            )
        out.extend((p.pk, p.payment_no, p.order_id) for p in payments)
    return out


def create_trades(rows: list[tuple[int, str, int]], *, expires_at, threads: int) -> float:
    """Create each payment's trade at the sandbox through the real adapter; returns the seconds it took."""
    from payments.gateways.base import PrepayRequest
    from payments.gateways.registry import get_gateway

    gateway = get_gateway("wechat")

    def one(row: tuple[int, str, int]) -> None:
        result = gateway.create(
            PrepayRequest(
                payment_no=row[1],
                amount_fen=PRICE_FEN,
                description="Locker rental 1h",
                product="native",
                expires_at=expires_at,
                notify_url="",
            )
        )
        if not result.code_url:
            raise RuntimeError(f"no code_url for {row[1]}")

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(one, rows, chunksize=64):
            pass
    return time.perf_counter() - start


def create_closed_filler(count: int) -> None:
    """``count`` closed WeChat payments of cancelled top-up orders (bulk): the rows a long run leaves behind."""
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from orders.models import Order
    from payments.models import Channel, Payment

    user, _ = get_user_model().objects.get_or_create(username="bench-reconcile", defaults={"password": "!unusable"})
    past = timezone.now() - timedelta(days=1)
    for start in range(0, count, 5000):
        idx = range(start, min(count, start + 5000))
        with transaction.atomic():
            orders = Order.objects.bulk_create(
                [
                    Order(
                        order_no=f"TUF{i:09d}",
                        user=user,
                        kind=Order.Kind.WALLET_TOPUP,
                        status=Order.Status.CANCELLED,
                        amount_fen=PRICE_FEN,
                        expires_at=past,
                    )
                    for i in idx
                ]
            )
            Payment.objects.bulk_create(
                [
                    Payment(
                        payment_no=f"PYF{i:09d}",
                        order=order,
                        channel=Channel.WECHAT_NATIVE,
                        status=Payment.Status.CLOSED,
                        amount_fen=PRICE_FEN,
                        last_synced_at=past,
                    )
                    for i, order in zip(idx, orders, strict=True)
                ]
            )


def claim_behind_filler(args: argparse.Namespace, sandbox) -> dict:
    """Insert ``--filler`` closed rows, then ``size`` due rows behind them: time the claiming SELECT (EXPLAIN ANALYZE,
    median of 3) and the queries of that batch, then reconcile and verify those rows."""
    from django.db import connection
    from django.utils import timezone

    from payments.models import Payment

    create_closed_filler(args.filler)
    trades = args.trades == "all"
    expires_at = timezone.now() + timedelta(minutes=15)
    rows = create_rows("X", args.size, expires_at=expires_at, status="pending" if trades else "created")
    if trades:
        create_trades(rows, expires_at=expires_at, threads=args.create_threads)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    now = expires_at + timedelta(hours=1)
    plans = [explain_claim(now, args.size) for _ in range(3)]
    ms = sorted(float(re.search(r"Execution Time: ([0-9.]+) ms", p).group(1)) for p in plans)
    probe = probe_batches(now=now, size=args.size, batches=1, meter=Meter())[0]
    problems = verify(rows, sandbox=sandbox, trades=trades)
    if probe["claimed"] != args.size or probe["errors"]:
        problems.append(f"filler probe batch claimed {probe['claimed']}: {probe['details']}")
    return {
        "closed_before": Payment.objects.filter(status=Payment.Status.CLOSED).count() - args.size,
        "claim_ms": ms[1],
        "queries": probe["queries"],
        "plan": plans[1],
        "problems": problems,
    }


# --------------------------------------------------------------------------- correctness


def verify(rows: list[tuple[int, str, int]], *, sandbox, trades: bool) -> list[str]:
    from django.db.models import Count

    from lockers.models import Compartment
    from orders.models import Order, OrderEvent
    from payments.models import Payment, PaymentEvent

    problems: list[str] = []
    payment_ids = [r[0] for r in rows]
    order_ids = [r[2] for r in rows]
    n = len(rows)

    def chunks(ids):
        for i in range(0, len(ids), 5000):
            yield ids[i : i + 5000]

    pay_status: collections.Counter = collections.Counter()
    flagged = closes = 0
    order_status: collections.Counter = collections.Counter()
    cancels = 0
    comp_status: collections.Counter = collections.Counter()
    for ids in chunks(payment_ids):
        qs = Payment.objects.filter(id__in=ids)
        pay_status.update(dict(qs.values_list("status").annotate(n=Count("id")).values_list("status", "n")))
        flagged += qs.exclude(flag="").count()
        closes += PaymentEvent.objects.filter(payment_id__in=ids, action="close").count()
    for ids in chunks(order_ids):
        qs = Order.objects.filter(id__in=ids)
        order_status.update(dict(qs.values_list("status").annotate(n=Count("id")).values_list("status", "n")))
        cancels += OrderEvent.objects.filter(order_id__in=ids, action="cancel").count()
        comps = Compartment.objects.filter(orders__id__in=ids)
        comp_status.update(dict(comps.values_list("status").annotate(n=Count("id")).values_list("status", "n")))
    if pay_status != {"closed": n}:
        problems.append(f"payments by status {dict(pay_status)} (expected all {n} closed)")
    if flagged:
        problems.append(f"{flagged} payments flagged")
    if closes != n:
        problems.append(f"{closes} 'close' payment events for {n} payments")
    if order_status != {"cancelled": n}:
        problems.append(f"orders by status {dict(order_status)} (expected all {n} cancelled)")
    if cancels != n:
        problems.append(f"{cancels} 'cancel' order events for {n} orders")
    if comp_status != {"free": n}:
        problems.append(f"compartments by status {dict(comp_status)} (expected all {n} free)")
    if trades:
        ours = {r[1] for r in rows}
        notpay = [t["out_trade_no"] for t in sandbox.control("wechat/transactions", state="NOTPAY")["transactions"]]
        left = [no for no in notpay if no in ours]
        if left:
            problems.append(f"{len(left)} trades still NOTPAY at the sandbox, e.g. {left[:3]}")
    return problems


# --------------------------------------------------------------------------- one N


def run_one(label: str, n: int, args: argparse.Namespace, sandbox) -> dict:
    from django.db import connection
    from django.utils import timezone

    from payments.reconciliation import reconcile_payments

    trades = args.trades == "all"
    status = "pending" if trades else "created"
    probe_rows = args.probe_batches * args.size
    profile_rows = args.size if args.profile else 0
    t0 = time.perf_counter()
    expires_at = timezone.now() + timedelta(minutes=15)
    rows = create_rows(label, probe_rows + profile_rows + n, expires_at=expires_at, status=status)
    setup_s = time.perf_counter() - t0
    trade_s = create_trades(rows, expires_at=expires_at, threads=args.create_threads) if trades else 0.0
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("CHECKPOINT")  # the setup's dirty pages are written now, not during the measured run
    print(
        f"[{label}] setup: {len(rows)} expired pending rentals + payments in {setup_s:.1f}s"
        + (
            f"; {len(rows)} trades created at the sandbox in {trade_s:.1f}s ({len(rows) / trade_s:.0f}/s)"
            if trades
            else "; no trade at the sandbox (payments 'created')"
        )
    )

    now = expires_at + timedelta(hours=1)
    meter = Meter()
    head = probe_batches(now=now, size=args.size, batches=args.probe_batches, meter=meter)
    plan_head = explain_claim(now, args.size)
    profile_text = profile_batch(now=now, size=args.size, lines=args.profile_lines) if profile_rows else ""

    # ---- measured
    batch_ends: list[float] = []
    commit_marks: list[float] = []  # cumulative COMMIT seconds at each batch end

    def progress(_total: int) -> None:
        batch_ends.append(time.perf_counter())
        commit_marks.append(meter.commit_s)

    meter.reset()
    with meter.installed():
        start = time.perf_counter()
        totals = reconcile_payments(
            now=now,
            size=args.size,
            max_batches=n // args.size + 10,
            progress=progress,
        )
        elapsed = time.perf_counter() - start
    timed = {
        "gateway_s": meter.gateway_s,
        "gateway_calls": dict(meter.gateway_calls),
        "sql_s": meter.sql_s,
        "sql_n": meter.sql_n,
        "claim_s": meter.claim_s,
        "claim_n": meter.claim_n,
        "commit_s": meter.commit_s,
        "commit_n": meter.commit_n,
    }

    # ---- tail probe: fresh rows behind the N closed ones
    tail_expires = timezone.now() + timedelta(minutes=15)
    tail_rows = create_rows(label + "T", probe_rows, expires_at=tail_expires, status=status)
    if trades:
        create_trades(tail_rows, expires_at=tail_expires, threads=args.create_threads)
    tail_now = tail_expires + timedelta(hours=1)
    plan_tail = explain_claim(tail_now, args.size)
    tail = probe_batches(now=tail_now, size=args.size, batches=args.probe_batches, meter=meter)

    problems = []
    if totals["payments"] != n or totals["closed"] != n or totals["errors"] or totals["succeeded"]:
        problems.append(f"reconcile_payments answered {totals} (expected {n} payments, all closed, no error)")
    for which, probes in (("head", head), ("tail", tail)):
        for p in probes:
            if p["claimed"] != args.size or p["closed"] != args.size or p["errors"]:
                problems.append(f"{which} probe batch: claimed {p['claimed']}, closed {p['closed']}, {p['details']}")
    problems += verify(rows + tail_rows, sandbox=sandbox, trades=trades)

    durations = [b - a for a, b in zip([start, *batch_ends[:-1]], batch_ends, strict=True)]
    commits = [b - a for a, b in zip([0.0, *commit_marks[:-1]], commit_marks, strict=True)]
    return {
        "label": label,
        "n": n,
        "elapsed": elapsed,
        "totals": totals,
        "batches": len(batch_ends),
        "durations": durations,
        "commits": commits,
        "head": head,
        "tail": tail,
        "plan_head": plan_head,
        "plan_tail": plan_tail,
        "timed": timed,
        "problems": problems,
        "trade_rate": len(rows) / trade_s if trade_s else 0.0,
        "profile": profile_text,
    }


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    return run_with_tmp("reconcile-bench-", run, parse_args(argv))


def run(args: argparse.Namespace, tmp: Path) -> bool:
    from sandbox.testing import running_sandbox

    with running_sandbox(data_dir=tmp / "sandbox", notify_scale=0.01) as sandbox:
        env = bench_env(dbname=args.dbname, sandbox_dir=tmp / "sandbox", work_dir=tmp)
        env.update(sandbox_gateway_env(sandbox.base_url, tmp / "sandbox"))
        setup_django(env)

        from django.conf import settings

        from core.embedded_pg import ensure_server

        server = ensure_server(Path(settings.EMBEDDED_PG_DIR))
        lock = hold_bench_lock(server, args.dbname)
        try:
            return _run(args, server, sandbox)
        finally:
            lock.close()


def _summary(result: dict) -> list[str]:
    n, elapsed = result["n"], result["elapsed"]
    d, c = result["durations"], result["commits"]
    tenth = max(1, len(d) // 10)
    t = result["timed"]
    other = max(0.0, elapsed - t["gateway_s"] - t["sql_s"] - t["commit_s"])
    head, tail = result["head"], result["tail"]
    calls = ", ".join(f"{k} {v}" for k, v in sorted(t["gateway_calls"].items()))
    return [
        f"N = {n:<8d}        {elapsed:.2f}s, {1000 * elapsed / n:.3f} ms per payment, {n / elapsed:.1f} payments/s, "
        f"{result['batches']} batches",
        f"  batch time       mean {1000 * statistics.mean(d):.0f} ms; first tenth "
        f"{1000 * statistics.mean(d[:tenth]):.0f} ms, last tenth {1000 * statistics.mean(d[-tenth:]):.0f} ms; "
        f"COMMITs of a batch: first tenth {1000 * statistics.mean(c[:tenth]):.0f} ms, last tenth "
        f"{1000 * statistics.mean(c[-tenth:]):.0f} ms, max {1000 * max(c):.0f} ms",
        f"  where the time   gateway round trips {t['gateway_s']:.2f}s ({calls}; "
        f"{1000 * t['gateway_s'] / max(1, sum(t['gateway_calls'].values())):.2f} ms each), "
        f"SQL {t['sql_s']:.2f}s ({t['sql_n']} statements, {t['sql_n'] / n:.1f} per payment), "
        f"of which claiming SELECTs {t['claim_s']:.2f}s ({t['claim_n']}), COMMIT {t['commit_s']:.2f}s "
        f"({t['commit_n']}), Python and the rest {other:.2f}s",
        f"  queries / batch  head {[p['queries'] for p in head]}, tail {[p['queries'] for p in tail]} "
        f"(batch of {head[0]['claimed']}; gateway calls {[p['gateway_calls'] for p in head]})",
        f"  claim SELECT ms  head {[round(p['claim_ms'], 1) for p in head]}, "
        f"tail (after {n} closed rows) {[round(p['claim_ms'], 1) for p in tail]}",
    ]


def _run(args: argparse.Namespace, server, sandbox) -> bool:
    from django.core.management import call_command

    t0 = time.perf_counter()
    recreate_database(server, args.dbname)
    call_command("migrate", interactive=False, verbosity=0)
    print(f"setup: database {args.dbname} migrated in {time.perf_counter() - t0:.1f}s; sandbox at {sandbox.base_url}")

    results = []
    for label, n in [("S", args.small), ("L", args.large)] + ([("R", args.small)] if args.repeat_small else []):
        results.append(run_one(label, n, args, sandbox))
        for line in _summary(results[-1]):  # as each run ends: a long run stopped later keeps what it measured
            print(line, flush=True)
    smalls, large = [r for r in results if r["n"] == args.small], results[1]
    small = smalls[0]
    small_s = statistics.mean(r["elapsed"] for r in smalls)
    problems = [f"[{r['label']}] {p}" for r in results for p in r["problems"]]
    all_counts = {p["queries"] for r in results for p in (*r["head"], *r["tail"])}
    filler = claim_behind_filler(args, sandbox) if args.filler else None
    if filler:
        problems += [f"[filler] {p}" for p in filler["problems"]]
        all_counts.add(filler["queries"])
    if args.drop:
        drop_database(server, args.dbname)
    if problems:
        print("FAIL: the benchmark run is not correct:\n  " + "\n  ".join(problems[:30]))
        return False

    per_row = sorted({(p["queries"] - _fixed(p)) / p["claimed"] for r in results for p in (*r["head"], *r["tail"])})
    queries_per_batch = max(all_counts)
    ratio = large["elapsed"] / small_s
    kinds = results[0]["head"][0]["kinds"]
    print()
    print(
        f"reconcile_payments  batch size {args.size}, trades at the sandbox: "
        + (
            "all (payments pending, the close is a real close)"
            if args.trades == "all"
            else "none (payments created, ORDER_NOT_EXIST)"
        )
    )
    for r in results:
        for line in _summary(r):
            print(line)
    for r in results:
        if r["profile"]:
            print(f"cProfile of one batch of {args.size} before the run of N = {r['n']}:")
            print(r["profile"])
    print(
        f"queries per batch   {sorted(all_counts)} for {args.size} payments "
        f"({'constant' if len(all_counts) == 1 else 'NOT constant'} across batches and across N; "
        f"{', '.join(f'{k} {v}' for k, v in kinds.items())}); per payment {per_row} + a fixed part per batch"
    )
    if args.show_queries:
        print("SQL of one probe batch (first 40 statements, literals as ?):")
        for i, sql in enumerate(results[0]["head"][0]["sql"][:40], 1):
            print(f"  {i:3d}. {sql[:150]}")
    print(f"claim plan, tail of N = {large['n']}:")
    print("  " + "\n  ".join(large["plan_tail"].splitlines()))
    if filler:
        scans = [line.strip() for line in filler["plan"].splitlines() if "Scan" in line or "Rows Removed" in line]
        print(f"claim plan behind the filler (after ANALYZE): {' | '.join(scans)}")
        print(_extrapolation(large, filler, args))
    print(
        "correctness         every order cancelled, every payment closed (events written), every compartment free, "
        + ("no trade left NOTPAY at the sandbox" if args.trades == "all" else "no trade at the sandbox")
    )
    scale = large["n"] / small["n"]
    smalls_text = " and ".join(f"{r['elapsed']:.2f}s" for r in smalls)
    print(
        f"time ratio          {ratio:.2f} = {large['elapsed']:.2f}s / {small_s:.2f}s "
        f"(N = {small['n']}: {smalls_text}{', before and after the large run' if len(smalls) > 1 else ''}) "
        f"for N x {scale:.0f} (target <= {1.1 * scale:.1f})"
    )
    print(
        f"RESULT n_small={small['n']} n_large={large['n']} time_ratio={ratio:.2f} queries_per_batch={queries_per_batch}"
    )
    return True


def _claim_ms(plan: str) -> float:
    return float(re.search(r"Execution Time: ([0-9.]+) ms", plan).group(1))


def _extrapolation(large: dict, filler: dict, args: argparse.Namespace) -> str:
    """Fit the claim's cost c(k) = a + b*k from the head (k = 0) and the tail (k = N + probe rows) of the large run
    and predict the claim time of a run of 10 x N_large. The partial index ``payment_open_by_id`` holds only open
    payments, so b should be ~0 (before it, the claim walked the primary key past every closed row: b > 0, the
    run's claim time grew with N^2)."""
    a = _claim_ms(large["plan_head"])
    k = large["n"] + len(large["head"]) * args.size
    b = max(0.0, (_claim_ms(large["plan_tail"]) - a) / k)
    n10 = 10 * large["n"]
    batches = n10 / args.size
    claim_s = (batches * a + b * n10 * n10 / (2 * args.size)) / 1000
    rest_s = 10 * (large["elapsed"] - large["timed"]["claim_s"])
    predicted = (rest_s + claim_s) / large["elapsed"]
    return (
        f"claim growth        {a:.1f} ms with nothing closed, {_claim_ms(large['plan_tail']):.1f} ms behind {k} closed"
        f" rows (the run's plan, above) -> {1000 * b:.3f} ms per 1000 closed rows; a run of N = {n10}"
        f" would spend ~{claim_s:.0f}s claiming in {batches:.0f} batches, predicted time ratio {n10}/{large['n']}"
        f" ~{predicted:.2f} (estimate, not measured); with fresh statistics, behind {filler['closed_before']} closed"
        f" rows: {filler['claim_ms']:.1f} ms (status index)"
    )


def _fixed(probe: dict) -> int:
    """Statements of a batch that do not depend on how many payments it claimed (claim transaction + the load)."""
    sqls = probe["sql"]
    load = next(i for i, s in enumerate(sqls) if s.startswith("SELECT") and "SKIP LOCKED" not in s)
    return load + 1


if __name__ == "__main__":
    sys.exit(main())
