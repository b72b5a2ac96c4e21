"""Project-wide test fixtures. Tests run against real PostgreSQL (the embedded one by default)."""

import threading

import pytest
from django.db import connections
from rest_framework.test import APIClient


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
