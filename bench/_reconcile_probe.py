"""Instrumentation for bench/reconcile_scaling.py: timers around gateway calls, SQL and COMMITs,
per-batch query capture, a cProfile of one batch, and the claim query's plan."""

from __future__ import annotations

import collections
import contextlib
import time

from bench._common import normalise_sql


class Meter:
    """Light timers around the measured job: gateway round trips (the adapter's ``close``/``query`` on the one
    process-wide instance) and SQL (the claiming ``SKIP LOCKED`` SELECT apart). A few microseconds per call."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.gateway_s = 0.0
        self.gateway_calls = collections.Counter()
        self.sql_s = 0.0
        self.sql_n = 0
        self.claim_s = 0.0
        self.claim_n = 0
        self.commit_s = 0.0
        self.commit_n = 0

    @contextlib.contextmanager
    def installed(self):
        from django.db import connection

        from payments.gateways.registry import get_gateway

        gateway = get_gateway("wechat")
        originals = {name: getattr(gateway, name) for name in ("close", "query")}

        def timed(name, func):
            def wrapper(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return func(*args, **kwargs)
                finally:
                    self.gateway_s += time.perf_counter() - start
                    self.gateway_calls[name] += 1

            return wrapper

        for name, func in originals.items():
            setattr(gateway, name, timed(name, func))

        def sql_wrapper(execute, sql, params, many, context):
            start = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                spent = time.perf_counter() - start
                self.sql_s += spent
                self.sql_n += 1
                if "SKIP LOCKED" in sql:
                    self.claim_s += spent
                    self.claim_n += 1

        real_commit = connection._commit

        def timed_commit():
            start = time.perf_counter()
            try:
                return real_commit()
            finally:
                self.commit_s += time.perf_counter() - start
                self.commit_n += 1

        connection._commit = timed_commit
        try:
            with connection.execute_wrapper(sql_wrapper):
                yield self
        finally:
            del connection._commit
            for name in originals:
                delattr(gateway, name)  # the instance attribute goes, the class method is back


def probe_batches(*, now, size: int, batches: int, meter: Meter) -> list[dict]:
    """``batches`` calls of ``reconcile_payments_batch``, each under ``CaptureQueriesContext``."""
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    from payments.reconciliation import reconcile_payments_batch

    out = []
    for _ in range(batches):
        reset_queries()  # the query log keeps at most 9000 entries: start each batch empty
        meter.reset()
        with CaptureQueriesContext(connection) as captured, meter.installed():
            start = time.perf_counter()
            report = reconcile_payments_batch(now=now, size=size)
            elapsed = time.perf_counter() - start
        sqls = [normalise_sql(q["sql"], literals=True) for q in captured.captured_queries]
        claim = [float(q["time"]) for q in captured.captured_queries if "SKIP LOCKED" in q["sql"]]
        out.append(
            {
                "claimed": report.claimed,
                "closed": report.closed,
                "errors": report.errors,
                "details": report.details,
                "queries": len(sqls),
                "sql": sqls,
                "kinds": collections.Counter(s.split(" ", 1)[0].upper() for s in sqls),
                "claim_ms": 1000 * sum(claim),
                "gateway_calls": sum(meter.gateway_calls.values()),
                "seconds": elapsed,
            }
        )
    return out


def profile_batch(*, now, size: int, lines: int) -> str:
    """cProfile of one ``reconcile_payments_batch`` (this process: the app's Python and the gateway client)."""
    import cProfile
    import io
    import pstats

    from payments.reconciliation import reconcile_payments_batch

    profiler = cProfile.Profile()
    profiler.enable()
    report = reconcile_payments_batch(now=now, size=size)
    profiler.disable()
    if report.claimed != size or report.errors:
        raise SystemExit(f"FAIL: profiled batch claimed {report.claimed}, errors {report.details}")
    buf = io.StringIO()
    stats = pstats.Stats(profiler, stream=buf).strip_dirs()
    stats.sort_stats("cumulative").print_stats(lines)
    stats.sort_stats("tottime").print_stats(lines)
    return buf.getvalue()


def explain_claim(now, size: int) -> str:
    """EXPLAIN (ANALYZE) of the claiming SELECT, inside a rolled-back transaction."""
    from django.db import connection, transaction

    from payments.reconciliation import payments_due

    queryset = (
        payments_due(now).select_for_update(skip_locked=True, of=("self",)).order_by("id").values_list("id", flat=True)
    )[:size]
    with transaction.atomic(), connection.cursor() as cursor:
        sql, params = queryset.query.sql_with_params()
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)
    return plan
