"""/metrics under gunicorn with several workers (``config/gunicorn.py``): the request metrics of every
worker are summed (prometheus_client's multiprocess mode), in the folder the checkout chose."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from conftest import _free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def _database_env() -> dict[str, str]:
    """Point gunicorn at this test run's database (the embedded server, or the DATABASE_URL server)."""
    db = connection.settings_dict
    if db["ENGINE"] == "core.pgembedded":
        return {"DATABASE_URL": "", "EMBEDDED_PG_DIR": db["OPTIONS_EMBEDDED_DIR"], "EMBEDDED_PG_DBNAME": db["NAME"]}
    auth = f"{db['USER']}:{db['PASSWORD']}@" if db.get("USER") else ""
    return {"DATABASE_URL": f"postgres://{auth}{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"}


@pytest.fixture
def gunicorn(tmp_path):
    port = _free_port()
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    (multiproc / "counter_999999.db").write_bytes(b"stale")  # a previous run's file: removed at start
    env = {
        **os.environ,
        **_database_env(),
        "APP_ENV": "development",
        "DJANGO_DEBUG": "false",
        "REDIS_URL": "",
        "METRICS_TOKEN": "",
        "LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    log = (tmp_path / "gunicorn.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:config.gunicorn",
            "config.wsgi",
            f"--bind=127.0.0.1:{port}",
            "--workers=2",
            "--worker-class=sync",
            "--log-level=warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()
            # refused until gunicorn listens; once it does, wait for the answer: a request given up
            # on the client side would still be counted after `before` is read (seen under load)
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{base}/healthz", timeout=60).status_code == 200:
                    break
            assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
            time.sleep(0.2)
        yield base, multiproc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()


def _requests_to(base: str, view: str) -> float:
    text = requests.get(f"{base}/metrics", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "django_http_responses_total_by_status_view_method_total"
                and sample.labels.get("view") == view
            ):
                total += sample.value
    return total


def test_every_workers_requests_are_counted_once(gunicorn):
    base, multiproc = gunicorn
    before = _requests_to(base, "healthz")

    for _ in range(30):  # a new connection each: the kernel hands them to both workers
        assert requests.get(f"{base}/healthz", headers={"Connection": "close"}, timeout=10).status_code == 200

    assert _requests_to(base, "healthz") == before + 30
    assert not (multiproc / "counter_999999.db").exists()
    files = {path.name for path in multiproc.iterdir()}
    assert len({name.rsplit("_", 1)[1] for name in files if name.startswith("counter_")}) == 2, files
