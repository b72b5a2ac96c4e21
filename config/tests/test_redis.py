"""REDIS_URL: cache (django-redis) and the Celery broker on a real Redis server.

The server is a throwaway ``redis-server`` on a free port in a temp folder (the ``redis_url``
fixture in conftest.py). Without the binary the Redis tests skip, and ``make test`` says how to
install it (CI installs it: ``scripts/ci-services.sh``).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import shared_task

from core.logging import log_context

BASE_DIR = Path(__file__).resolve().parents[2]
logger = logging.getLogger(__name__)


@shared_task(name="config.tests.redis_probe")
def redis_probe(path: str, payment_no: str) -> None:
    """Run by the worker subprocess (``--include config.tests.test_redis``): proves consumption."""
    with log_context(payment_no=payment_no):
        logger.info("redis probe ran")
    Path(path).write_text(payment_no)


def run_with_redis(url: str, code: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CELERY_", "LOG_"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", "REDIS_URL": url, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- Settings -------------------------------------------------------------------------------------
def test_settings_pick_redis_for_cache_and_broker(redis_url, redis_client):
    code = """
import json, django
django.setup()
from django.conf import settings
from django.core.cache import cache
from config.celery import app
cache.set("settings-probe", {"fen": 1200}, 60)
print(json.dumps({
    "cache": settings.CACHES["default"]["BACKEND"],
    "location": settings.CACHES["default"]["LOCATION"],
    "broker": settings.CELERY_BROKER_URL,
    "app_broker": app.conf.broker_url,
    "round_trip": cache.get("settings-probe"),
}))
"""
    result = run_with_redis(redis_url, code)

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["cache"] == "django_redis.cache.RedisCache"
    assert values["location"] == redis_url
    assert values["broker"] == redis_url
    assert values["app_broker"] == redis_url
    assert values["round_trip"] == {"fen": 1200}
    # the value went through the server, under django-redis's key format
    assert redis_client.exists(":1:settings-probe")
    assert 0 < redis_client.ttl(":1:settings-probe") <= 60


# --- Cache ---------------------------------------------------------------------------------------
def test_cache_round_trips_through_redis(redis_cache):
    from django.core.cache import cache

    cache.set("order:LK1", {"amount_fen": 990}, timeout=30)

    assert cache.get("order:LK1") == {"amount_fen": 990}
    assert redis_cache.keys("*") == [b":1:order:LK1"]
    cache.delete("order:LK1")
    assert redis_cache.keys("*") == []


# --- Celery broker: publish with the project's settings, consume with a real worker -----------------
@pytest.mark.slow
def test_a_task_goes_through_the_redis_broker_to_a_worker(redis_url, redis_client, tmp_path):
    done = tmp_path / "probe.done"
    publish = f"""
import django
django.setup()
from config.tests.test_redis import redis_probe
redis_probe.delay({str(done)!r}, "PYREDIS1")
"""
    # given: a task published through settings (REDIS_URL) with no worker running
    published = run_with_redis(redis_url, publish)
    assert published.returncode == 0, published.stderr
    assert redis_client.llen("celery") == 1  # it waits in Redis
    assert not done.exists()

    # when: a worker (configured by the same settings) starts
    log_path = tmp_path / "worker.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CELERY_", "LOG_"))}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", REDIS_URL=redis_url, LOG_FORMAT="json")
    args = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--loglevel=INFO"]
    args += ["--without-gossip", "--without-mingle", "--without-heartbeat", "--include=config.tests.test_redis"]
    with log_path.open("w") as log:
        worker = subprocess.Popen(args, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while not done.exists() and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.2)
        # then: it ran the task and acknowledged it
        assert done.exists(), log_path.read_text()[-3000:]
        assert done.read_text() == "PYREDIS1"
        for _ in range(50):
            if redis_client.llen("celery") == 0 and not redis_client.hlen("unacked"):
                break
            time.sleep(0.1)
        assert redis_client.llen("celery") == 0
        assert redis_client.hlen("unacked") == 0
    finally:
        worker.terminate()
        worker.wait(30)

    # and the worker logged JSON lines, the task's line with the payment_no it bound
    entries = []
    for line in log_path.read_text().splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    probe = [e for e in entries if e["message"] == "redis probe ran"]
    assert len(probe) == 1, log_path.read_text()[-3000:]
    assert probe[0]["payment_no"] == "PYREDIS1"
    assert probe[0]["logger"] == "config.tests.test_redis"
