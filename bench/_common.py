"""Shared helpers for the benchmark scripts: environment, embedded PostgreSQL, gunicorn, pgbench, CPU accounting.

Every benchmark uses its own database on the embedded PostgreSQL server (never ``locker`` nor a test
database), runs the web app under gunicorn as in production, and measures a baseline (pgbench) in the
same run, because absolute figures on a shared machine mean little.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `python bench/x.py` puts bench/ first on sys.path, not the project
    sys.path.insert(0, str(REPO_ROOT))

PROTECTED_DATABASES = frozenset({"locker", "postgres", "template0", "template1"})


# --------------------------------------------------------------------------- environment


def bench_env(*, dbname: str, sandbox_dir: Path, work_dir: Path, conn_max_age: int = 3600) -> dict[str, str]:
    """Variables that point the app (this process and gunicorn) at the bench database and keys.

    Explicit values win over a developer's ``.env`` (settings read it without overwriting): the
    development profile, the embedded server, the sandbox gateway keys of this run, no Redis.
    Gateway settings are forced empty so that the sandbox keys fill them.
    """
    env = {
        "APP_ENV": "development",
        "DJANGO_DEBUG": "false",  # DEBUG would keep every query in memory: not how production runs
        "DJANGO_SECRET_KEY": "bench-" + os.urandom(16).hex(),
        "DATABASE_URL": "",
        "EMBEDDED_PG_DBNAME": dbname,
        "DB_CONN_MAX_AGE": str(conn_max_age),
        "REDIS_URL": "",
        "CELERY_FILESYSTEM_DIR": str(work_dir / "celery"),
        "SANDBOX_ENABLED": "true",
        "SANDBOX_DATA_DIR": str(sandbox_dir),
        "LOG_LEVEL": "WARNING",
    }
    for name in (
        "WECHAT_APPID",
        "WECHAT_PAY_MCHID",
        "WECHAT_PAY_SERIAL_NO",
        "WECHAT_PAY_API_V3_KEY",
        "WECHAT_PAY_PRIVATE_KEY_PATH",
        "WECHAT_PAY_PUBLIC_KEY_PATH",
        "WECHAT_PAY_PUBLIC_KEY_ID",
        "WECHAT_PAY_PLATFORM_CERT_DIR",
    ):
        env[name] = ""
    return env


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()


def check_bench_dbname(name: str) -> None:
    if name in PROTECTED_DATABASES or name.startswith("test") or "bench" not in name:
        raise SystemExit(f"refusing to use database {name!r}: a bench database name must contain 'bench'")


def hold_bench_lock(server, name: str):
    """A session advisory lock, held while the returned connection is open: two runs on one bench database
    would drop it under each other. Exits if another run holds it."""
    import psycopg

    conn = psycopg.connect(server.dsn("postgres"), autocommit=True)
    locked = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [f"bench-db:{name}"]).fetchone()[0]
    if not locked:
        conn.close()
        raise SystemExit(f"another benchmark run is using database {name!r}: wait for it, or pass another --dbname")
    return conn


def recreate_database(server, name: str) -> None:
    """DROP (even with open connections) and CREATE the bench database."""
    import psycopg
    from psycopg import sql

    check_bench_dbname(name)
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


# --------------------------------------------------------------------------- gunicorn


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """``gunicorn config.wsgi`` on 127.0.0.1:<free port>, in its own process group; ``stop()`` is idempotent."""

    def __init__(
        self,
        *,
        env: dict[str, str],
        workers: int,
        threads: int,
        log_path: Path,
        app: str = "config.wsgi:application",
        python: str = sys.executable,
        cwd: Path = REPO_ROOT,
        product_config: bool = False,
    ) -> None:
        """``app``, ``python``, ``cwd``: another WSGI app (a peer measured beside ours) in its own venv.
        ``product_config``: ``-c python:config.gunicorn`` as production runs it (metrics in
        PROMETHEUS_MULTIPROC_DIR: the caller points it at its own temporary folder)."""
        self.env = {**os.environ, **env}
        self.workers = workers
        self.threads = threads
        self.log_path = log_path
        self.app, self.python, self.cwd = app, python, cwd
        self.product_config = product_config
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, *, timeout: float = 60.0) -> None:
        cmd = [
            self.python,
            "-m",
            "gunicorn",
            *(("-c", "python:config.gunicorn") if self.product_config else ()),
            self.app,
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--worker-class",
            "gthread" if self.threads > 1 else "sync",
            "--threads",
            str(self.threads),
            "--backlog",
            "2048",
            "--keep-alive",
            "5",
            "--timeout",
            "60",
            "--graceful-timeout",
            "5",
            "--log-level",
            "warning",
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn not healthy after {timeout:.0f}s:\n{self.log_tail()}")

    def pids(self) -> list[int]:
        """The master and its workers."""
        if self.proc is None:
            return []
        return [self.proc.pid, *children_of(self.proc.pid)]

    def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)  # graceful: the master stops its workers
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # our own process group only
            self.proc.wait(timeout=5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


# --------------------------------------------------------------------------- pgbench


_TPS_EXCLUDING = re.compile(
    r"tps = ([0-9.]+) \((?:without initial connection time|excluding connections establishing)\)"
)
_TPS_ANY = re.compile(r"tps = ([0-9.]+)")


def parse_pgbench_tps(output: str) -> float:
    match = _TPS_EXCLUDING.search(output) or _TPS_ANY.search(output)
    if not match:
        raise RuntimeError(f"no tps in pgbench output:\n{output}")
    return float(match.group(1))


def _pgbench(server, dbname: str, *args: str) -> str:
    check_bench_dbname(dbname)
    cmd = [str(Path(server.bin_dir) / "pgbench"), *args]
    cmd += ["-h", str(server.socket_dir), "-p", str(server.port), "-U", "postgres", dbname]
    done = subprocess.run(cmd, env={**os.environ, "PGOPTIONS": ""}, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def pgbench_init(server, dbname: str, *, scale: int = 1) -> None:
    """``pgbench -i -s scale``: (re)creates the pgbench_* tables in the bench database."""
    _pgbench(server, dbname, "-i", "-q", "-s", str(scale))


def pgbench_tps(server, dbname: str, *, clients: int, jobs: int, seconds: int) -> float:
    """``pgbench -N -c clients -j jobs -T seconds`` over the server's socket: tps without connection time."""
    return parse_pgbench_tps(_pgbench(server, dbname, "-N", "-c", str(clients), "-j", str(jobs), "-T", str(seconds)))


# --------------------------------------------------------------------------- CPU accounting (Linux /proc)

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def process_cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (those that have gone are skipped)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / _CLK_TCK


def system_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return (total - idle) / _CLK_TCK, total / _CLK_TCK


# --------------------------------------------------------------------------- reporting


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


# --------------------------------------------------------------------------- wallet_contention, reconcile_scaling


def pgbench_script_tps(
    server, dbname: str, script: str, *, clients: int, jobs: int, seconds: int, work_dir: Path
) -> float:
    """``pgbench -n -f <script> -c clients -j jobs -T seconds``: tps of a custom script (no vacuum of pgbench_*)."""
    path = work_dir / f"pgbench-{abs(hash(script)):x}.sql"
    path.write_text(script)
    out = _pgbench(server, dbname, "-n", "-f", str(path), "-c", str(clients), "-j", str(jobs), "-T", str(seconds))
    return parse_pgbench_tps(out)


def db_backend_pids(dbname: str) -> list[int]:
    """PIDs of the PostgreSQL backends connected to ``dbname`` (this process's own connection excluded)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [dbname])
        return [row[0] for row in cursor.fetchall()]


class CpuMeter:
    """CPU seconds of gunicorn, of the PostgreSQL backends and of the whole machine between ``start`` and ``stop``."""

    def __init__(self, app_pids: list[int], pg_pids: list[int]) -> None:
        self.app_pids, self.pg_pids = app_pids, pg_pids
        self.before = self.after = (0.0, 0.0, 0.0, 0.0)

    def _now(self) -> tuple[float, float, float, float]:
        return (process_cpu_seconds(self.app_pids), process_cpu_seconds(self.pg_pids), *system_cpu())

    def start(self) -> None:
        self.before = self._now()

    def stop(self) -> None:
        self.after = self._now()

    def report(self, *, elapsed: float, n: int, client_cpu: float, unit: str) -> str:
        app = self.after[0] - self.before[0]
        pg = self.after[1] - self.before[1]
        busy = self.after[2] - self.before[2]
        wall = self.after[3] - self.before[3]
        if wall <= 0 or n <= 0:
            return "CPU accounting unavailable"
        rest = max(0.0, busy - app - pg - client_cpu)
        return (
            f"machine {100 * busy / wall:.0f}% busy of {wall / elapsed:.1f} cores; per {unit}: "
            f"gunicorn {1000 * app / n:.2f} ms, postgres backends {1000 * pg / n:.2f} ms, "
            f"bench clients {1000 * client_cpu / n:.2f} ms, everything else {1000 * rest / n:.2f} ms"
        )


def run_with_tmp(prefix: str, run, args) -> int:
    """A bench's ``main``: ``run(args, tmp)`` in a fresh temporary folder, removed after a good run (unless
    ``args.keep_tmp``), kept after a failed one; exit status 0 when ``run`` answered True."""
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    ok = False
    try:
        ok = run(args, tmp)
    except SystemExit:  # refused or failed early: nothing worth keeping
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if tmp.exists() and ok and not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            print(f"temporary folder kept: {tmp}")
    return 0 if ok else 1


class KeepAliveClient:
    """One keep-alive HTTP/1.1 connection over ``http.client`` (cheap on CPU); reconnects when the server closed it."""

    def __init__(self, base_url: str) -> None:
        import http.client
        import urllib.parse

        parsed = urllib.parse.urlsplit(base_url)
        self.conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)

    def send(self, method: str, path: str, headers: dict, body: bytes | None) -> tuple[int, bytes]:
        try:
            try:
                self.conn.request(method, path, body=body, headers=headers)
            except (BrokenPipeError, ConnectionResetError):
                # the server closed this idle keep-alive connection (gunicorn's keepalive timeout) before the
                # request was written: it never saw it, so it is sent again on a new connection, once
                self.conn.close()
                self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            return response.status, response.read()
        except Exception:
            self.conn.close()
            raise

    def close(self) -> None:
        self.conn.close()


def http_load(base_url: str, items: list[tuple[str, str, dict, bytes | None]], concurrency: int) -> dict:
    """Send every (method, path, headers, body) with ``concurrency`` threads, one keep-alive connection each,
    all released at once. Returns statuses, bodies, latencies and finish times (seconds after the start) per item,
    transport errors, the elapsed time and the CPU this process spent."""
    import http.client
    import itertools
    import threading

    n = len(items)
    statuses = [0] * n
    bodies: list[bytes] = [b""] * n
    latencies = [0.0] * n
    finished = [0.0] * n
    errors: list[str] = []
    counter = itertools.count()
    barrier = threading.Barrier(concurrency + 1)
    origin = [0.0]

    def work() -> None:
        client = KeepAliveClient(base_url)
        barrier.wait()
        while (i := next(counter)) < n:
            method, path, headers, body = items[i]
            start = time.perf_counter()
            try:
                statuses[i], bodies[i] = client.send(method, path, headers, body)
            except (OSError, http.client.HTTPException) as exc:
                statuses[i] = -1
                errors.append(f"#{i}: {exc!r}")
            end = time.perf_counter()
            latencies[i] = end - start
            finished[i] = end - origin[0]
        client.close()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    cpu_before = time.process_time()
    origin[0] = time.perf_counter()
    barrier.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - origin[0]
    return {
        "elapsed": elapsed,
        "statuses": statuses,
        "bodies": bodies,
        "latencies": latencies,
        "finished": finished,
        "errors": errors,
        "client_cpu": time.process_time() - cpu_before,
    }


def latency_summary(latencies_s: list[float]) -> str:
    ms = [x * 1000 for x in latencies_s]
    return (
        f"p50 {percentile(ms, 50):.1f}  p95 {percentile(ms, 95):.1f}  p99 {percentile(ms, 99):.1f}  max {max(ms):.1f}"
    )


def drop_database(server, name: str) -> None:
    import psycopg
    from psycopg import sql

    check_bench_dbname(name)
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def sandbox_gateway_env(base_url: str, data_dir: Path) -> dict[str, str]:
    """Gateways pointed at a running sandbox (as conftest's ``gateways`` fixture does); notifications go nowhere."""
    return {
        "SANDBOX_ENABLED": "true",
        "SANDBOX_DATA_DIR": str(data_dir),
        "SANDBOX_BASE_URL": base_url,
        "WECHAT_PAY_API_BASE": base_url,
        "ALIPAY_GATEWAY": f"{base_url}/alipay/gateway.do",
        "WALLYT_API_URL": f"{base_url}/wallyt/pay/gateway",
        "WECHAT_PAY_NOTIFY_URL": "http://127.0.0.1:9/api/v1/payments/notify/wechat/",
        "ALIPAY_NOTIFY_URL": "http://127.0.0.1:9/api/v1/payments/notify/alipay/",
        "WALLYT_NOTIFY_URL": "http://127.0.0.1:9/api/v1/payments/notify/wallyt/",
    }


def run_against_sandbox(args, tmp: Path, extra_env: dict[str, str], body) -> bool:
    """``body(env)`` with the sandbox running in ``tmp/sandbox``, the gateways pointed at it, Django set up on
    ``args.dbname`` (held with the bench lock, recreated and migrated); ``env`` is what gunicorn needs too."""
    from sandbox.testing import running_sandbox

    with running_sandbox(data_dir=tmp / "sandbox", notify_scale=0.01) as sandbox:
        env = bench_env(dbname=args.dbname, sandbox_dir=tmp / "sandbox", work_dir=tmp)
        env.update(sandbox_gateway_env(sandbox.base_url, tmp / "sandbox"))
        env.update(extra_env)
        setup_django(env)

        from django.conf import settings
        from django.core.management import call_command

        from core.embedded_pg import ensure_server

        server = ensure_server(Path(settings.EMBEDDED_PG_DIR))
        lock = hold_bench_lock(server, args.dbname)
        try:
            recreate_database(server, args.dbname)
            call_command("migrate", interactive=False, verbosity=0)
            return body(env)
        finally:
            lock.close()


def normalise_sql(sql: str, *, literals: bool = False) -> str:
    """One line per statement, savepoint names folded (and, with ``literals``, values) so counts group."""
    sql = re.sub(r"\s+", " ", sql)
    sql = re.sub(r'SAVEPOINT "[^"]+"', 'SAVEPOINT "s"', sql)
    return re.sub(r"'[^']*'|\b\d+\b", "?", sql) if literals else sql
