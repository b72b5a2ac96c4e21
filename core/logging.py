"""Structured logs (structlog): one JSON object per line, with the business keys of the code that logged.

Code binds the keys it is working on, and every line logged inside carries them, whatever the
logger (our modules, Django, Celery, the SDKs through the standard library, or ``structlog.get_logger()``):

    with log_context(payment_no=payment.payment_no, order_no=order.order_no):
        ...  # every log line here has "payment_no" and "order_no"

The context is structlog's ``contextvars`` context: each thread (gunicorn ``--threads``, the race
tests) and each asyncio task has its own, so keys never leak between concurrent requests. A
``with log_context(...)`` block restores the previous context on exit; ``bind_log_context`` returns
tokens for ``reset_log_context`` where a ``with`` block does not fit.

The console handler's formatter (``LOGGING`` in settings) is a ``structlog.stdlib.ProcessorFormatter``:
``JsonFormatter`` writes ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the context, any
``extra=`` fields and the traceback (``exc_info``), on one line; ``PlainFormatter`` is the development
format with the context appended as ``key=value``. Between them run structlog's processors
(``merge_contextvars``, ``ExtraAdder``, ``add_logger_name``, ``EventRenamer``, ``format_exc_info``) and
ours: keys that look like secrets are written as ``[redacted]`` (``redact_secrets``), and a context or
extra key named like one of the line's own keys is written as ``ctx_<key>`` (``protect_reserved``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextvars import Token
from datetime import UTC, datetime
from typing import Any

import structlog
from structlog.contextvars import bind_contextvars, get_contextvars, merge_contextvars, reset_contextvars
from structlog.typing import EventDict, Processor, WrappedLogger

# the keys the services bind; any other keyword works too
CONTEXT_KEYS = ("payment_no", "refund_no", "order_no", "event_id", "gateway", "task_id")
REDACTED = "[redacted]"
_SECRET_KEY_NAME = re.compile(
    r"pass(word)?|secret|token|authori[sz]ation|cookie|private|api_?key|signature|credential|(^|_)key$|^sign$",
    re.IGNORECASE,
)
_RESERVED_OUTPUT = ("time", "level", "logger", "message")  # a line's own keys, in this order

Tokens = Mapping[str, Token[Any]]


def get_log_context() -> dict[str, Any]:
    """The keys bound in this thread / task right now."""
    return get_contextvars()


def bind_log_context(**fields: Any) -> Tokens:
    """Add keys to the current context (``None`` values are ignored); undo with ``reset_log_context``."""
    return bind_contextvars(**{k: v for k, v in fields.items() if v is not None})


def reset_log_context(tokens: Tokens) -> None:
    reset_contextvars(**tokens)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Every line logged inside the block carries ``fields`` (nested blocks add to the outer ones)."""
    tokens = bind_log_context(**fields)
    try:
        yield
    finally:
        reset_log_context(tokens)


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
    """``value`` with every secret-named key redacted, at any depth (``headers={"Authorization": ...}``)."""
    if is_secret_name(name):
        return REDACTED
    if isinstance(value, dict):
        return {k: _safe(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe("", v) for v in value]
    return value


# --- Processors ---------------------------------------------------------------------------------------
def protect_reserved(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """A context or ``extra=`` key named like a line's own key is kept as ``ctx_<key>`` (never overwrites it)."""
    for key in _RESERVED_OUTPUT:
        if key in event:
            event[f"ctx_{key}"] = event.pop(key)
    return event


def add_level_and_time(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """``level`` (``INFO``) and ``time`` (UTC, milliseconds) of the record, not of the formatting."""
    record: logging.LogRecord = event["_record"]
    event["level"] = record.levelname
    event["time"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
    return event


def redact_secrets(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Every key that looks like a secret (``is_secret_name``) is written as ``[redacted]``."""
    for key in event:
        if not key.startswith("_") and key not in _RESERVED_OUTPUT:
            event[key] = _safe(key, event[key])
    return event


def _traceback_as_exc_info(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    if "exception" in event:
        event["exc_info"] = event.pop("exception")
    return event


def _line(event: EventDict) -> tuple[logging.LogRecord, dict[str, Any]]:
    """The record and the line's fields: its own keys, the business keys (``CONTEXT_KEYS`` order), the rest."""
    record = event.pop("_record")
    event.pop("_from_structlog", None)
    first = [key for key in (*_RESERVED_OUTPUT, *CONTEXT_KEYS) if key in event]
    return record, {**{key: event.pop(key) for key in first}, **event}


def render_json(_: WrappedLogger, __: str, event: EventDict) -> str:
    return json.dumps(_line(event)[1], ensure_ascii=False, default=str)


_PLAIN_TIME = logging.Formatter()


def render_plain(_: WrappedLogger, __: str, event: EventDict) -> str:
    """``<local time> LEVEL logger message [key=value ...]``, a traceback on the lines below."""
    record, fields = _line(event)
    first = f"{_PLAIN_TIME.formatTime(record)} {fields.pop('level')} {fields.pop('logger')} {fields.pop('message')}"
    fields.pop("time")
    below = [fields.pop(key) for key in ("exc_info", "stack") if key in fields]
    if fields:
        first += " [" + " ".join(f"{key}={value}" for key, value in fields.items()) + "]"
    return "\n".join([first, *below])


def _drop_formatting_attrs(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """``message`` and ``asctime`` on a record come from another handler's formatting (``extra=`` may not
    use those names), not from the code that logged."""
    event.pop("message", None)
    event.pop("asctime", None)
    return event


# a standard-library record gets the context and its extra= fields (a structlog call has them as keywords)
FOREIGN_PRE_CHAIN: list[Processor] = [merge_contextvars, structlog.stdlib.ExtraAdder(), _drop_formatting_attrs]
SHARED: list[Processor] = [
    protect_reserved,
    add_level_and_time,
    structlog.stdlib.add_logger_name,
    structlog.processors.EventRenamer("message"),
    structlog.processors.StackInfoRenderer(),
    structlog.processors.format_exc_info,
    _traceback_as_exc_info,
    redact_secrets,
]


class JsonFormatter(structlog.stdlib.ProcessorFormatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, context, extras."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, processors=[*SHARED, render_json], foreign_pre_chain=FOREIGN_PRE_CHAIN, **kwargs)


class PlainFormatter(structlog.stdlib.ProcessorFormatter):
    """The development format, with the context appended: ``... message [payment_no=PY1 order_no=LK1]``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, processors=[*SHARED, render_plain], foreign_pre_chain=FOREIGN_PRE_CHAIN, **kwargs)


def configure_structlog() -> None:
    """``structlog.get_logger()`` loggers go through the standard library's handlers (and so the formatters
    above) with the bound context; called once, from settings."""
    structlog.configure(
        processors=[
            merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


# --- Celery: each task runs with task_id and task name bound ------------------------------------------
_task_tokens: dict[str, Tokens] = {}


def _task_started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id:
        _task_tokens[task_id] = bind_log_context(task_id=task_id, task=getattr(task, "name", None))


def _task_finished(task_id: str | None = None, **_: Any) -> None:
    tokens = _task_tokens.pop(task_id, None) if task_id else None
    if tokens is not None:
        with contextlib.suppress(ValueError):  # set in another context (should not happen): leave it
            reset_log_context(tokens)


def connect_celery_task_context() -> None:
    """Bind ``task_id`` and ``task`` for the duration of every task (call once, in config/celery.py)."""
    from celery.signals import task_postrun, task_prerun

    task_prerun.connect(_task_started, weak=False, dispatch_uid="core.logging.task_started")
    task_postrun.connect(_task_finished, weak=False, dispatch_uid="core.logging.task_finished")
