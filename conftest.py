"""Project-wide test fixtures. Tests run against real PostgreSQL (the embedded one by default).

Tests that need a program from outside Python (Chromium, redis-server) ask for it through a
fixture here. Without it they skip, and ``make test`` ends with one line naming each skipped
group and the command that brings it. With ``TEST_FAIL_ON_SKIP=1`` (set by ``.ci/run``) every
skip is a failure instead.
"""

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections
from rest_framework.test import APIClient


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """A test database per run: several runs (people, CI, benchmarks) can share one server."""
    from django.conf import settings

    suffix = os.environ.get("TEST_DB_SUFFIX") or str(os.getpid())
    for alias in settings.DATABASES.values():
        alias.setdefault("TEST", {})["NAME"] = f"test_{alias['NAME']}_{suffix}"


def pytest_configure(config):
    # Tests publish Celery tasks to an in-memory broker: nothing runs them unless a test says so
    # (the ``celery_eager`` fixture), and nothing is written to the filesystem broker folder.
    from config.celery import app

    app.conf.update(broker_url="memory://", broker_transport_options={})


@pytest.fixture
def celery_eager():
    """Explicitly run tasks in-process for this test (side effects after commit)."""
    from config.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    """The sandbox gateways as a real process (HTTP), shared by the session; reset per test."""
    from sandbox.testing import running_sandbox

    with running_sandbox(data_dir=tmp_path_factory.mktemp("sandbox"), notify_scale=0.01) as handle:
        yield handle


@pytest.fixture
def gateways(sandbox, settings):
    """Every gateway pointed at the sandbox, configured from its generated credentials."""
    from payments.gateways.registry import reset_gateways

    sandbox.reset()
    settings.SANDBOX_ENABLED = True
    settings.SANDBOX_DATA_DIR = sandbox.data_dir
    settings.WECHAT_PAY_API_BASE = sandbox.base_url
    settings.ALIPAY_GATEWAY = sandbox.alipay_gateway
    settings.WALLYT_API_URL = sandbox.wallyt_url
    settings.WALLYT_BILL_URL = sandbox.wallyt_bill_url
    # notifications go nowhere (port 9 refuses) unless a test asks for them (``notify_to``)
    settings.WECHAT_PAY_NOTIFY_URL = "http://127.0.0.1:9/api/v1/payments/notify/wechat/"
    settings.ALIPAY_NOTIFY_URL = "http://127.0.0.1:9/api/v1/payments/notify/alipay/"
    settings.WALLYT_NOTIFY_URL = "http://127.0.0.1:9/api/v1/payments/notify/wallyt/"
    reset_gateways()
    yield sandbox
    reset_gateways()


@pytest.fixture
def notify_to(live_server, gateways, settings):
    """Gateways whose notifications reach this test's live server."""
    from payments.gateways.registry import reset_gateways

    settings.WECHAT_PAY_NOTIFY_URL = f"{live_server.url}/api/v1/payments/notify/wechat/"
    settings.ALIPAY_NOTIFY_URL = f"{live_server.url}/api/v1/payments/notify/alipay/"
    settings.WALLYT_NOTIFY_URL = f"{live_server.url}/api/v1/payments/notify/wallyt/"
    settings.ALIPAY_RETURN_URL = f"{live_server.url}/api/v1/payments/return/alipay/"
    reset_gateways()
    return gateways


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _rate_limits_out_of_the_way(settings):
    """Tests of other things make many requests from 127.0.0.1: the rate limits are far above them.
    config/tests/test_throttling.py sets small ones to test the limits themselves."""
    settings.THROTTLE_RATES = dict.fromkeys(settings.THROTTLE_RATES, "100000/s")


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def user(db):
    from core.tests.factories import UserFactory

    return UserFactory()


@pytest.fixture
def user_api(user):
    from core.jwt_auth import token_for

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    client.user = user
    return client


def run_concurrently(fn, *, args_list, timeout=60):
    """Run ``fn(*args)`` for each args tuple in its own thread, all released at once.

    Each thread uses its own database connection (closed at the end). Returns the list of
    results, with exceptions returned in place of results.
    """
    barrier = threading.Barrier(len(args_list))
    results: list = [None] * len(args_list)

    def worker(i, args):
        try:
            barrier.wait()
            results[i] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - collected for the test to inspect
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i, a)) for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a concurrent worker hung"
    return results


# --- programs from outside Python: skip groups ---------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
SKIP_GROUPS = {  # group -> (what skips, the command that brings what it needs)
    "chromium": ("browser tests", "apt-get update && apt-get install -y chromium  (as root; .ci/run does it)"),
    "redis": ("Redis tests", "apt-get update && apt-get install -y redis-server  (as root; .ci/run does it)"),
    "promtool": ("alert rule checks", "apt-get update && apt-get install -y prometheus  (as root; .ci/run does it)"),
}
_GROUP_TAG = re.compile(r"^\[(?P<group>[a-z-]+)\] ")


def skip_group(group: str, missing: str) -> None:
    """Skip this test as part of ``group``; the reason names what is missing and how to get it."""
    pytest.skip(f"[{group}] {missing}: {SKIP_GROUPS[group][1]}")


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, driven by Playwright (``playwright`` itself is a dev requirement)."""
    if not CHROMIUM.exists():
        skip_group("chromium", f"no Chromium at {CHROMIUM}")
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """A throwaway ``redis-server`` on a free port, its files in this run's temp folder."""
    binary = shutil.which("redis-server")
    if binary is None:
        skip_group("redis", "redis-server is not installed")
    import redis

    folder = tmp_path_factory.mktemp("redis")
    port = _free_port()
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(folder),
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    with (folder / "redis.log").open("w") as log:
        server = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 - fixed argv
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if server.poll() is not None:
                    pytest.fail(f"redis-server exited: {(folder / 'redis.log').read_text()}")
                time.sleep(0.1)
        else:
            pytest.fail("redis-server did not answer PING in 10 s")
        yield url
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture
def redis_client(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    return client


@pytest.fixture
def redis_cache(redis_url, redis_client, settings):
    """This process's default cache pointed at the test server, as settings.py does with REDIS_URL."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis_url,
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }
    from django.core.cache import caches

    assert type(caches["default"]).__name__ == "RedisCache"
    return redis_client


def _fail_on_skip() -> bool:
    return os.environ.get("TEST_FAIL_ON_SKIP", "").lower() in ("1", "true", "yes")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """With TEST_FAIL_ON_SKIP, a skip is a failure that says what was missing."""
    report = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report)
        # carried on the report (xdist sends its attributes), so the summary sees it in the controller
        report.skip_reason = reason
        if _fail_on_skip():
            report.outcome = "failed"
            report.longrepr = f"skipped, and TEST_FAIL_ON_SKIP is set (CI runs everything): {reason}"
    return report


def pytest_collectreport(report):
    if report.skipped and _fail_on_skip():  # a whole module skipped at collection
        report.outcome = "failed"
        report.longrepr = f"skipped, and TEST_FAIL_ON_SKIP is set (CI runs everything): {_skip_reason(report)}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One line naming each skipped group and the command that brings it, after pytest's own summary."""
    yield
    reports = [report for outcome in ("skipped", "failed") for report in terminalreporter.stats.get(outcome, [])]
    reasons = [report.skip_reason for report in reports if hasattr(report, "skip_reason")]
    if not reasons:
        return
    groups: Counter = Counter()
    others: Counter = Counter()
    for reason in reasons:
        tag = _GROUP_TAG.match(reason)
        if tag and tag["group"] in SKIP_GROUPS:
            groups[tag["group"]] += 1
        else:
            others[reason] += 1
    parts = [f"{count} {SKIP_GROUPS[group][0]} (`{SKIP_GROUPS[group][1]}`)" for group, count in groups.items()]
    parts += [f"{count} more: {reason}" for reason, count in others.items()]
    verb = "failed as skipped" if _fail_on_skip() else "skipped"
    terminalreporter.write_line(f"{verb}: " + "; ".join(parts), yellow=True, bold=True)
