"""Project-wide test fixtures. Tests run against real PostgreSQL (the embedded one by default)."""

import os
import threading

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


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def user(db):
    from config.tests.factories import UserFactory

    return UserFactory()


@pytest.fixture
def user_api(user):
    from config.jwt_auth import token_for

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
