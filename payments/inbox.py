"""The inbox of gateway notifications: verify -> store and claim -> dispatch -> record -> replay.

The view (``payments.webhooks``) only adapts HTTP; everything a notification goes through is here:

1. **verify**: the gateway adapter checks the signature and every field (``parse_notification``);
2. **store**: every notification gets its inbox row (``GatewayNotification``: headers, body, remote address,
   what verification established, the outcome). A body that does not verify is stored at once, bounded (its
   first ``UNVERIFIED_KEEP_BYTES`` bytes with its SHA-256 and size);
3. **claim**: a verified one is stored by the first statement of its processing transaction, which claims
   its event id (``INSERT ... ON CONFLICT DO NOTHING`` on the unique (gateway, event_id): the dedupe is the
   database's, and a concurrent duplicate waits for the first to commit);
4. **dispatch**: trade words to ``payments.services``, refund words to the handler refunds registered in
   ``payments.hooks``, Pay Score service orders to ``payments.payscore``;
5. **record**: the outcome on the row: applied, duplicate, refused with its reason, or a crash's exception
   and traceback (the processing transaction is rolled back; its row is written again with the evidence);
6. **replay**: an admin re-runs a stored, verified notification (``notification_replay``).

Storing the row in the processing transaction (not before verifying, in a transaction of its own) saves a
commit per notification; nothing is lost: every outcome, a crash's too, writes the row, and a process that
dies mid-transaction never answered the gateway, which delivers the notification again.

Anonymous junk cannot fill the inbox: a body over the gateway's limit (``BODY_LIMITS``, the one limit),
headers over ``HEADER_LIMIT`` or a body without a Content-Length are refused by the view before a row is
written; and from a sender whose bodies keep failing verification (more than ``NOTIFY_UNVERIFIED_PER_MINUTE``
a minute, counted per process: ``unverified_senders``) a body that does not verify either is answered 429
with nothing stored (one that verifies is stored and applied as usual: a gateway behind the same proxy
address is never held up).
Duplicates and ignored event types get the gateway's success reply (a failure makes it retry for a day).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import threading
import time
import traceback
from datetime import datetime

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Subquery
from django.utils import timezone

from core.audit import Actor
from core.db import prepared_cursor
from core.errors import DomainError, NotificationInvalid, SignatureInvalid
from core.logging import log_context
from payments import hooks
from payments.gateways.base import Notification, NotificationReply, RefundStatus
from payments.gateways.registry import get_gateway
from payments.models import GatewayNotification, Payment
from payments.payscore import _apply as _apply_service_order
from payments.services import _apply_trade_status

logger = logging.getLogger(__name__)

# used only when the gateway itself is not configured (no adapter to format the answer)
_UNCONFIGURED = {
    "wechat": NotificationReply(503, "application/json", b'{"code":"FAIL","message":"not configured"}'),
}
_PLAIN_FAIL = NotificationReply(503, "text/plain", b"fail")
# The one body limit per gateway. Real notifications are 1-3 KiB (WeChat's encrypted JSON, Alipay's
# form, Wallyt's flat XML); a larger body is refused before anything is stored.
BODY_LIMITS = {"wechat": 64 * 1024, "alipay": 64 * 1024, "wallyt": 64 * 1024}
UNVERIFIED_KEEP_BYTES = 4096
HEADER_LIMIT = 16 * 1024  # all headers together: a gateway's are well under 2 KiB
CRASH_TRACEBACK_FRAMES = 30  # the innermost frames of a crash's traceback, kept on the row


def _refused(reply: NotificationReply, status: int) -> NotificationReply:
    """A notification refused before processing answers 401 (signature) or 400 (malformed, not ours)
    in the gateway's failure format: any non-2xx (or, Alipay/Wallyt, non-``success``) reply makes the
    gateway retry, and the status tells monitoring it was the sender's fault (docs/OpenAPI: the
    notification operations in web/openapi.py)."""
    return dataclasses.replace(reply, status=status)


def _parsed(notification: Notification) -> dict:
    def plain(obj):
        data = dataclasses.asdict(obj)
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}

    return {
        "trade": plain(notification.trade) if notification.trade else None,
        "refund": plain(notification.refund) if notification.refund else None,
        "service_order": plain(notification.service_order) if notification.service_order else None,
    }


class _UnverifiedSenders:
    """Per-process record of bodies that failed verification, per sender address, over the last minute
    (a sliding window: no boundary at which a flooding sender starts afresh)."""

    WINDOW_SECONDS = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, collections.deque[float]] = {}

    def _recent(self, address: str, now: float) -> collections.deque[float]:
        times = self._failures.setdefault(address, collections.deque())
        while times and times[0] <= now - self.WINDOW_SECONDS:
            times.popleft()
        return times

    def over_limit(self, address: str | None, *, limit: int, now: float) -> bool:
        with self._lock:
            return len(self._recent(address or "", now)) >= limit

    def failed(self, address: str | None, *, now: float) -> None:
        with self._lock:
            if len(self._failures) > 10_000:  # a flood from many addresses: forget the quiet ones
                self._failures = {a: t for a, t in self._failures.items() if t and t[-1] > now - self.WINDOW_SECONDS}
            times = self._recent(address or "", now)
            times.append(now)
            if len(times) > 10_000:
                times.popleft()


unverified_senders = _UnverifiedSenders()


def notification_receive(
    *, gateway_name: str, headers: dict, body: bytes, remote_addr: str | None, store_unverified: bool = True
) -> NotificationReply | None:
    """Store, verify, apply; the gateway's reply. ``store_unverified=False`` (a sender over its limit of
    bodies that do not verify): verify first and store only what verifies; None when it does not."""
    with log_context(gateway=gateway_name):
        return _receive(
            gateway_name=gateway_name,
            headers=headers,
            body=body,
            remote_addr=remote_addr,
            store_unverified=store_unverified,
        )


def _receive(
    *, gateway_name: str, headers: dict, body: bytes, remote_addr: str | None, store_unverified: bool
) -> NotificationReply | None:
    received = _Received(gateway=gateway_name, headers=headers, body=body, remote_addr=remote_addr)
    try:
        gateway = get_gateway(gateway_name)
    except DomainError as exc:
        if store_unverified:
            _record(None, received, error=exc.message)
        return _UNCONFIGURED.get(gateway_name, _PLAIN_FAIL)
    try:
        notification = gateway.parse_notification(headers, body)
    except (SignatureInvalid, NotificationInvalid) as exc:
        unverified_senders.failed(remote_addr, now=time.time())
        if not store_unverified:
            return None
        error = f"{exc.code}: {exc.message}"
        row_id = _record(
            None,
            dataclasses.replace(received, body=body[:UNVERIFIED_KEEP_BYTES]),
            error=error,
            body_sha256=hashlib.sha256(body).hexdigest(),
            body_size=len(body),
        )
        logger.warning("notification %s from %s refused: %s", row_id, gateway_name, error)
        return _refused(gateway.notification_reply(ok=False, message=exc.message), exc.http_status)
    except Exception as exc:  # a crash while verifying: the raw notification and the traceback are kept
        _record(None, received, error=_crash_text(exc))
        raise
    with log_context(
        event_id=notification.event_id,
        payment_no=notification.trade.payment_no if notification.trade else None,
        refund_no=notification.refund.refund_no if notification.refund else None,
    ):
        ok, message = notification_process(received=received, notification=notification, gateway=gateway)
    return gateway.notification_reply(ok=ok, message=message)


@dataclasses.dataclass(frozen=True)
class _Received:
    """A notification as it arrived: what its inbox row keeps whatever happens next."""

    gateway: str
    headers: dict
    body: bytes
    remote_addr: str | None


_INSERT = """
    INSERT INTO payments_gatewaynotification (gateway, received_at, remote_addr, headers, body, body_sha256, body_size,
        verified, event_id, event_type, parsed, reference, payment_id, duplicate, processed_at, error)
    VALUES (%s, %s, %s::inet, %s::jsonb, %s, %s, %s, %s, %s, %s, %s::jsonb, %s,
        (SELECT id FROM payments_payment WHERE payment_no = %s), %s, %s, %s)
"""
_FIELDS = (
    "body_sha256",
    "body_size",
    "verified",
    "event_id",
    "event_type",
    "parsed",
    "reference",
    "payment_no",
    "duplicate",
    "processed_at",
    "error",
)
_DEFAULTS = {
    "body_sha256": "",
    "body_size": None,
    "verified": False,
    "event_id": None,
    "event_type": "",
    "parsed": None,
    "reference": "",
    "payment_no": None,
    "duplicate": False,
    "processed_at": None,
    "error": "",
}


def _insert(received: _Received, *, on_conflict: str = "", **fields) -> int | None:
    """One INSERT of the inbox row (raw SQL: the hot path of every notification). ``payment_no``: the payment
    to link (NULL when there is none). Returns the row's id; None when ``on_conflict`` skipped it."""
    values = {**_DEFAULTS, **fields}
    values["parsed"] = None if values["parsed"] is None else json.dumps(values["parsed"])
    params = [received.gateway, timezone.now(), received.remote_addr, json.dumps(received.headers), received.body]
    params += [values[name] for name in _FIELDS]
    with prepared_cursor() as cursor:
        cursor.execute(f"{_INSERT} {on_conflict} RETURNING id", params)
        row = cursor.fetchone()
    return row[0] if row else None


def _record(row: GatewayNotification | None, received: _Received | None, **fields) -> int:
    """Write an outcome on the notification's row: a new row (``row`` None), or the stored one (a replay)."""
    if row is not None:
        if "payment_no" in fields:
            fields["payment"] = Subquery(Payment.objects.filter(payment_no=fields.pop("payment_no")).values("pk")[:1])
        GatewayNotification.objects.filter(pk=row.pk).update(**fields)
        return row.pk
    return _insert(received, **fields)


def _crash_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc(limit=-CRASH_TRACEBACK_FRAMES)}"


def _verified_fields(notification: Notification) -> dict:
    """What verification established, recorded on the inbox row with the outcome of processing."""
    reference = ""
    if notification.trade:
        reference = notification.trade.payment_no
    elif notification.refund:
        reference = notification.refund.refund_no
    elif notification.service_order:
        reference = notification.service_order.out_order_no
    return {
        "verified": True,
        "event_type": notification.event_type,
        "reference": reference,
        "parsed": _parsed(notification),
    }


class _Duplicate(Exception):
    """The event id is already claimed: leave the processing transaction (rolled back: it holds nothing else)."""


def notification_process(
    *,
    notification: Notification,
    gateway,
    received: _Received | None = None,
    row: GatewayNotification | None = None,
) -> tuple[bool, str]:
    """Apply a verified notification once and record it: a new inbox row for ``received``, or the stored
    ``row`` (a replay). Returns (ok, message) for the gateway's reply.

    One transaction: its first statement claims the event id while it writes the row (``INSERT ... ON
    CONFLICT DO NOTHING`` on the unique (gateway, event_id): the dedupe is the database's; a concurrent
    duplicate waits on it and finds the event claimed once the first commits); then the notification is
    applied. A duplicate's claim writes nothing, so its transaction is rolled back as a whole and the
    duplicate is recorded on a row of its own. A refusal or a crash rolls everything back and is recorded
    (the error; a crash with its traceback) with what verification established, in one statement.
    """
    verified = _verified_fields(notification)
    claim = {**verified, "event_id": notification.event_id, "processed_at": timezone.now()}
    if notification.trade is not None and notification.refund is None:
        # the payment a trade notification is applied to is the one its payment_no names (applying
        # raises NotFound otherwise, which rolls this back): linked in the claim, no second UPDATE
        claim["payment_no"] = notification.trade.payment_no
    try:
        with transaction.atomic():
            if row is None:
                row_id = _insert(
                    received, on_conflict="ON CONFLICT ON CONSTRAINT notification_event_once DO NOTHING", **claim
                )
                if row_id is None:
                    raise _Duplicate
            else:
                try:
                    row_id = _record(row, None, **claim, error="")
                except IntegrityError:
                    raise _Duplicate from None
            payment = _apply(notification, gateway=gateway)
            if "payment_no" not in claim and payment is not None:
                GatewayNotification.objects.filter(pk=row_id).update(payment=payment)
    except _Duplicate:
        _record(row, received, **verified, duplicate=True, processed_at=timezone.now())
        return True, ""
    except DomainError as exc:
        detail = getattr(exc, "reason", exc.message)  # a refused field: what was received and expected
        row_id = _record(row, received, **verified, error=f"{exc.code}: {detail}")
        logger.warning("notification %s not applied: %s", row_id, detail)
        return False, exc.message
    except Exception as exc:  # a crash: keep what verification established and the traceback, then fail loudly
        try:
            _record(row, received, **verified, error=_crash_text(exc))
        except DatabaseError:
            logger.exception("notification of event %s: could not record the failure", notification.event_id)
        raise
    return True, ""


def _apply(notification: Notification, *, gateway) -> Payment | None:
    """Apply what the notification says; one Alipay notify can carry a trade and a refund. Runs in a
    transaction of the caller's that a failure rolls back as a whole."""
    actor = Actor.gateway(gateway.name)
    payment = None
    if notification.trade is not None:
        # payment_apply_trade_status's body: called in the processing transaction, which a failure rolls
        # back as a whole, so without a savepoint of its own
        payment = _apply_trade_status(trade=notification.trade, actor=actor)
    if notification.refund is not None:
        payment = _apply_refund(notification.refund, actor=actor) or payment
    if notification.service_order is not None:  # WeChat Pay Score: in this transaction, no savepoint
        _apply_service_order(status=notification.service_order, actor=actor)
    return payment  # neither: an event type we do not act on, acknowledged


def _apply_refund(refund: RefundStatus, *, actor: Actor) -> Payment | None:
    """Refunds live in the refunds app, which imports payments (not the other way): it registers its
    handler in ``payments.hooks`` (``RefundsConfig.ready``)."""
    return hooks.refund_status_handler()(status=refund, actor=actor)


def _notification_from_parsed(row: GatewayNotification) -> Notification:
    from datetime import datetime as dt

    from payments.gateways.base import RefundState, TradeState, TradeStatus

    def restore(data: dict | None, cls, state_enum, time_fields):
        if not data:
            return None
        values = {"gateway": row.gateway, "source": "notify", **data}  # rows stored before these fields
        values["state"] = state_enum(values["state"])
        for name in time_fields:
            if values.get(name):
                values[name] = dt.fromisoformat(values[name])
        return cls(**values)

    parsed = row.parsed or {}
    service_order = None
    if parsed.get("service_order"):
        from payments.gateways.wechat_payscore import ServiceOrderState, ServiceOrderStatus

        service_order = restore(parsed["service_order"], ServiceOrderStatus, ServiceOrderState, ("paid_at",))
    return Notification(
        event_id=row.event_id or f"replay-{row.pk}",
        event_type=row.event_type,
        trade=restore(parsed.get("trade"), TradeStatus, TradeState, ("paid_at",)),
        refund=restore(parsed.get("refund"), RefundStatus, RefundState, ("succeeded_at",)),
        service_order=service_order,
    )


def notification_replay(*, row_id: int) -> tuple[bool, str]:
    """Re-run the processing of a stored, verified notification (admin action). Verification is not
    repeated (its timestamp is old by now): only what was verified and recorded at receipt is used."""
    row = GatewayNotification.objects.get(pk=row_id)
    if not row.verified or not row.parsed:
        raise NotificationInvalid("Only a verified notification can be replayed.")
    gateway = get_gateway(row.gateway)
    if row.event_id is None:
        return notification_process(notification=_notification_from_parsed(row), gateway=gateway, row=row)
    # processed before: apply again (idempotent) without touching the dedupe key
    with transaction.atomic():
        _apply(_notification_from_parsed(row), gateway=gateway)
        GatewayNotification.objects.filter(pk=row.pk).update(processed_at=timezone.now(), error="")
    return True, ""
