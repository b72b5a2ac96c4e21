"""JSON logs (structlog): one object per line, with the context the code bound, in its own thread only, secrets
redacted; the same for structlog's own loggers."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from core.logging import (
    JsonFormatter,
    PlainFormatter,
    bind_log_context,
    connect_celery_task_context,
    get_log_context,
    log_context,
    reset_log_context,
)

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger wired like settings.LOGGING's console handler (the JSON formatter)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("config.tests.json")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)
    logger.propagate = True


def lines(stream: io.StringIO) -> list[dict]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]  # each line alone is one JSON object


def test_a_line_inside_log_context_is_one_json_object_with_the_keys(captured):
    logger, stream = captured

    with log_context(payment_no="PY1", order_no="LK1"):
        logger.info("paid %s fen", 1200)

    [entry] = lines(stream)
    assert entry["payment_no"] == "PY1"
    assert entry["order_no"] == "LK1"
    assert entry["message"] == "paid 1200 fen"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "config.tests.json"
    assert entry["time"].endswith("+00:00")


def test_context_nests_and_is_restored(captured):
    logger, stream = captured

    with log_context(payment_no="PY1"):
        with log_context(refund_no="RF1", event_id=None):  # None is "not known": not written
            logger.info("inner")
        logger.info("outer")
    logger.info("after")

    inner, outer, after = lines(stream)
    assert inner["payment_no"] == "PY1"
    assert inner["refund_no"] == "RF1"
    assert "event_id" not in inner
    assert "refund_no" not in outer
    assert outer["payment_no"] == "PY1"
    assert "payment_no" not in after
    assert get_log_context() == {}


def test_context_is_restored_when_the_block_raises(captured):
    logger, stream = captured

    with pytest.raises(ZeroDivisionError), log_context(payment_no="PY1"):
        1 / 0  # noqa: B018
    logger.info("later")

    assert "payment_no" not in lines(stream)[0]


def test_bind_and_reset(captured):
    logger, stream = captured

    token = bind_log_context(event_id="EV1")
    logger.info("bound")
    reset_log_context(token)
    logger.info("reset")

    bound, reset = lines(stream)
    assert bound["event_id"] == "EV1"
    assert "event_id" not in reset


def test_context_does_not_leak_between_threads(captured):
    logger, stream = captured
    barrier = threading.Barrier(3)

    def work(payment_no: str | None) -> None:
        if payment_no is None:
            barrier.wait()
            barrier.wait()
            logger.info("thread without context")
            return
        with log_context(payment_no=payment_no):
            barrier.wait()  # all threads are inside their blocks at the same time
            barrier.wait()
            logger.info("thread %s", payment_no)

    with log_context(payment_no="MAIN"):
        threads = [threading.Thread(target=work, args=(p,)) for p in ("PY-A", "PY-B", None)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)

    by_message = {entry["message"]: entry for entry in lines(stream)}
    assert by_message["thread PY-A"]["payment_no"] == "PY-A"
    assert by_message["thread PY-B"]["payment_no"] == "PY-B"
    assert "payment_no" not in by_message["thread without context"]  # not the main thread's MAIN


def test_a_traceback_stays_on_one_line(captured):
    logger, stream = captured

    with log_context(refund_no="RF9"):
        try:
            raise ValueError("bad\nthing")
        except ValueError:
            logger.exception("refund failed")

    [entry] = lines(stream)
    assert entry["refund_no"] == "RF9"
    assert "ValueError: bad\nthing" in entry["exc_info"]


def test_extra_fields_are_written_and_secrets_are_not(captured):
    logger, stream = captured

    with log_context(payment_no="PY1", api_v3_key="k" * 32):
        logger.warning(
            "refused",
            extra={"gateway": "wechat", "password": "hunter2", "Authorization": "Bearer abc", "time": "x"},
        )

    raw = stream.getvalue()
    [entry] = lines(stream)
    assert entry["gateway"] == "wechat"
    assert entry["password"] == entry["Authorization"] == entry["api_v3_key"] == "[redacted]"
    assert "hunter2" not in raw
    assert "k" * 32 not in raw
    assert "Bearer abc" not in raw
    assert entry["ctx_time"] == "x"  # an extra cannot overwrite the line's own keys
    assert entry["time"] != "x"


def test_secrets_nested_in_a_field_are_redacted_too(captured):
    """Found by an outside tester: ``extra={"headers": {"Authorization": ...}}`` was written in clear."""
    logger, stream = captured
    nested = {"headers": {"Authorization": "Bearer zzz", "Accept": "*/*"}, "calls": [{"client_secret": "cs"}]}
    logger.warning("sent", extra=nested)
    structlog.get_logger("config.tests.json").warning("sl", nested={"client_secret": "cs2"})

    raw = stream.getvalue()
    first, second = lines(stream)
    assert first["headers"] == {"Authorization": "[redacted]", "Accept": "*/*"}
    assert first["calls"] == [{"client_secret": "[redacted]"}]
    assert second["nested"] == {"client_secret": "[redacted]"}
    assert "Bearer zzz" not in raw and '"cs"' not in raw and '"cs2"' not in raw


def test_another_handler_formatting_first_adds_nothing(captured):
    """pytest's capture, or a second handler, formats the record first: its message and asctime are not extras."""
    logger, stream = captured
    first = logging.StreamHandler(io.StringIO())
    first.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.handlers.insert(0, first)
    try:
        logger.info("twice")
    finally:
        logger.removeHandler(first)

    [entry] = lines(stream)
    assert entry["message"] == "twice"
    assert "ctx_message" not in entry and "asctime" not in entry


def test_plain_format_shows_the_context():
    record = logging.LogRecord("payments", logging.INFO, __file__, 1, "applied", None, None)
    with log_context(payment_no="PY1", order_no="LK1"):
        text = PlainFormatter().format(record)

    assert text.endswith("INFO payments applied [payment_no=PY1 order_no=LK1]")


def test_plain_format_redacts_and_keeps_a_traceback_below():
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.LogRecord("payments", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    with log_context(payment_no="PY1", wechat_pay_api_v3_key="k" * 32):
        text = PlainFormatter().format(record)

    first, *below = text.splitlines()
    assert " ERROR payments failed [" in first and first.endswith("]")
    assert {"payment_no=PY1", "wechat_pay_api_v3_key=[redacted]"} == set(first.split(" [", 1)[1][:-1].split(" "))
    assert below[0].startswith("Traceback") and below[-1] == "ValueError: bad"
    assert "k" * 32 not in text


def test_structlog_loggers_carry_the_context_and_redact_secrets(captured):
    """structlog's own loggers write through the same handler: context, keywords, redaction."""
    _, stream = captured
    logger = structlog.get_logger("config.tests.json")

    with log_context(refund_no="RF7"):
        logger.warning("gateway answered", gateway="alipay", private_key="-----BEGIN", sign="abc", amount_fen=300)

    raw = stream.getvalue()
    [entry] = lines(stream)
    assert entry["message"] == "gateway answered" and entry["level"] == "WARNING"
    assert entry["logger"] == "config.tests.json" and entry["refund_no"] == "RF7"
    assert entry["gateway"] == "alipay" and entry["amount_fen"] == 300
    assert entry["private_key"] == entry["sign"] == "[redacted]"
    assert "-----BEGIN" not in raw and "abc" not in raw
    assert list(entry)[:4] == ["time", "level", "logger", "message"]


def test_celery_tasks_run_with_task_id_bound(captured):
    from celery import shared_task

    logger, stream = captured
    connect_celery_task_context()

    @shared_task(name="config.tests.log_probe")
    def log_probe() -> None:
        with log_context(payment_no="PYT"):
            logger.info("inside task")

    log_probe.apply(task_id="task-123")
    logger.info("after task")

    inside, after = lines(stream)
    assert inside["task_id"] == "task-123"
    assert inside["task"] == "config.tests.log_probe"
    assert inside["payment_no"] == "PYT"
    assert "task_id" not in after


# --- Settings: LOG_FORMAT and its production default --------------------------------------------------
SNIPPET = """
import logging, django
django.setup()
from core.logging import log_context
with log_context(payment_no="PY42"):
    logging.getLogger("payments.services").warning("applied")
"""


def run_settings(**env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LOG_", "APP_"))}
    return subprocess.run(
        [sys.executable, "-c", SNIPPET],
        cwd=BASE_DIR,
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_log_format_json_in_settings():
    result = run_settings(LOG_FORMAT="json")

    assert result.returncode == 0, result.stderr
    [entry] = [json.loads(line) for line in result.stderr.splitlines()]
    assert entry["payment_no"] == "PY42"
    assert entry["logger"] == "payments.services"


def test_production_logs_json_and_development_plain():
    production = run_settings(APP_ENV="production", DJANGO_SECRET_KEY="x" * 50, DJANGO_ALLOWED_HOSTS="pay.example.com")
    development = run_settings(APP_ENV="development")

    assert production.returncode == 0, production.stderr
    assert json.loads(production.stderr.strip())["payment_no"] == "PY42"
    assert development.returncode == 0, development.stderr
    assert development.stderr.strip().endswith("WARNING payments.services applied [payment_no=PY42]")


def test_an_unknown_log_format_is_refused():
    result = run_settings(LOG_FORMAT="xml")

    assert result.returncode != 0
    assert "LOG_FORMAT must be json or plain" in result.stderr
