"""Structured logs: one JSON object per line, with the business keys of the code that logged.

Code binds the keys it is working on, and every line logged inside carries them, whatever the
logger (our modules, Django, Celery, the SDKs):

    with log_context(payment_no=payment.payment_no, order_no=order.order_no):
        ...  # every log line here has "payment_no" and "order_no"

The context lives in a ``contextvars.ContextVar``: each thread (gunicorn ``--threads``, the
race tests) and each asyncio task has its own, so keys never leak between concurrent requests.
A ``with log_context(...)`` block restores the previous context on exit; ``bind_log_context``
returns a token for ``reset_log_context`` where a ``with`` block does not fit.

``ContextFilter`` (on the handler, see ``LOGGING`` in settings) copies the context onto each
record; ``JsonFormatter`` writes ``time, level, logger, message``, the context, any ``extra=``
fields and the traceback, on one line. ``PlainFormatter`` is the development format with the
context appended as ``key=value``. Keys that look like secrets are written as ``[redacted]``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

# the keys the services bind; any other keyword works too
CONTEXT_KEYS = ("payment_no", "refund_no", "order_no", "event_id", "gateway", "task_id")
REDACTED = "[redacted]"
_SECRET_KEY_NAME = re.compile(
    r"pass(word)?|secret|token|authori[sz]ation|cookie|private|api_?key|signature|credential|(^|_)key$|^sign$",
    re.IGNORECASE,
)
# attributes every LogRecord has; anything else on a record came from ``extra=`` or the context
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_RESERVED_OUTPUT = frozenset({"time", "level", "logger", "message", "exc_info", "stack_info"})

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_context: ContextVar[Mapping[str, Any]] = ContextVar("log_context", default=_EMPTY)


def get_log_context() -> dict[str, Any]:
    """The keys bound in this thread / task right now."""
    return dict(_context.get())


def bind_log_context(**fields: Any) -> Token[Mapping[str, Any]]:
    """Add keys to the current context (``None`` values are ignored); undo with ``reset_log_context``."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    return _context.set(MappingProxyType(merged))


def reset_log_context(token: Token[Mapping[str, Any]]) -> None:
    _context.reset(token)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Every line logged inside the block carries ``fields`` (nested blocks add to the outer ones)."""
    token = bind_log_context(**fields)
    try:
        yield
    finally:
        _context.reset(token)


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_KEY_NAME.search(name))


def is_secret_field(name: str) -> bool:
    """A secret as ``is_secret_name`` says, or a signature of a gateway message (``sign``,
    ``paySign``): what a page masks in what a gateway sent us."""
    return is_secret_name(name) or name.lower().endswith("sign")


def masked(value: Any) -> Any:
    """A copy of a JSON value with the value of every secret field (``is_secret_field``) replaced."""
    if isinstance(value, dict):
        return {k: REDACTED if is_secret_field(str(k)) else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


_XML_ELEMENT = re.compile(r"<([A-Za-z_][\w.:-]*)>(.*?)</\1>", re.DOTALL)
_JSON_STRING_MEMBER = re.compile(r'"((?:[^"\\]|\\.)+)"(\s*:\s*)"((?:[^"\\]|\\.)*)"')
_FORM_PAIR = re.compile(r"(^|&)([^=&\s]+)=([^&]*)")


def masked_text(body: str) -> str:
    """A gateway's message body as received, with the value of every secret field replaced and
    everything else left as it was: XML elements (``<sign>...</sign>``, Wallyt), JSON string
    members (``"sign": "..."``) and form fields (``sign=...&``, Alipay)."""

    def xml(match: re.Match[str]) -> str:
        name, inner = match.group(1), match.group(2)
        inner = REDACTED if is_secret_field(name) else _XML_ELEMENT.sub(xml, inner)
        return f"<{name}>{inner}</{name}>"

    def member(match: re.Match[str]) -> str:
        if not is_secret_field(match.group(1)):
            return match.group(0)
        return f'"{match.group(1)}"{match.group(2)}"{REDACTED}"'

    def pair(match: re.Match[str]) -> str:
        if not is_secret_field(match.group(2)):
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}={REDACTED}"

    text = _XML_ELEMENT.sub(xml, body)
    text = _JSON_STRING_MEMBER.sub(member, text)
    if "=" in text and not text.lstrip().startswith(("{", "[", "<")):
        text = _FORM_PAIR.sub(pair, text)
    return text


def _safe(name: str, value: Any) -> Any:
    return REDACTED if is_secret_name(name) else value


class ContextFilter(logging.Filter):
    """Copies the bound context onto the record (an ``extra=`` field of the same name wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        record.log_context = context
        for key, value in context.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The context and ``extra=`` fields of a record, secrets redacted, in a stable order."""
    fields: dict[str, Any] = {}
    context = getattr(record, "log_context", None)
    if context is None:  # a handler without ContextFilter: read the context here (same thread)
        context = _context.get()
    for key, value in context.items():
        fields[key] = _safe(key, value)
    for key, value in vars(record).items():
        if key in _RECORD_ATTRS or key == "log_context" or key.startswith("_"):
            continue
        fields[key] = _safe(key, value)
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, context, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record_fields(record).items():
            entry[f"ctx_{key}" if key in _RESERVED_OUTPUT else key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    """The development format, with the context appended: ``... message [payment_no=PY1 order_no=LK1]``."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None) -> None:
        super().__init__(fmt or "%(asctime)s %(levelname)s %(name)s %(message)s", datefmt)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = record_fields(record)
        if not fields:
            return text
        suffix = " ".join(f"{key}={value}" for key, value in fields.items())
        first, newline, rest = text.partition("\n")  # keep a traceback below the context
        return f"{first} [{suffix}]{newline}{rest}"


# --- Celery: each task runs with task_id and task name bound ------------------------------------------
_task_tokens: dict[str, Token[Mapping[str, Any]]] = {}


def _task_started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id:
        _task_tokens[task_id] = bind_log_context(task_id=task_id, task=getattr(task, "name", None))


def _task_finished(task_id: str | None = None, **_: Any) -> None:
    token = _task_tokens.pop(task_id, None) if task_id else None
    if token is not None:
        with contextlib.suppress(ValueError):  # set in another context (should not happen): leave it
            _context.reset(token)


def connect_celery_task_context() -> None:
    """Bind ``task_id`` and ``task`` for the duration of every task (call once, in config/celery.py)."""
    from celery.signals import task_postrun, task_prerun

    task_prerun.connect(_task_started, weak=False, dispatch_uid="config.logging.task_started")
    task_postrun.connect(_task_finished, weak=False, dispatch_uid="config.logging.task_finished")
