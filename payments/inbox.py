"""The inbox of gateway notifications: store -> verify -> claim -> dispatch -> record -> replay.

The view (``payments.webhooks``) only adapts HTTP; everything a notification goes through is here:

1. **store**: the raw notification (headers, body, remote address) is committed to ``GatewayNotification``
   before verification, so that a failed check or a crash keeps the evidence;
2. **verify**: the gateway adapter checks the signature and every field (``parse_notification``); a body
   that does not verify is kept only as its first ``UNVERIFIED_KEEP_BYTES`` bytes with its SHA-256 and size;
3. **claim**: one transaction whose first statement claims the event id (unique (gateway, event_id):
   the dedupe is the database's);
4. **dispatch**: trade words to ``payments.services``, refund words to the handler refunds registered in
   ``payments.hooks``, Pay Score service orders to ``payments.payscore``;
5. **record**: the outcome on the row (applied, duplicate, refused with its reason, or the crash's
   exception and traceback);
6. **replay**: an admin re-runs a stored, verified notification (``notification_replay``).

Anonymous junk cannot fill the inbox: a body over the gateway's limit (``BODY_LIMITS``, the one limit),
headers over ``HEADER_LIMIT`` or a body without a Content-Length are refused by the view before a row is
written; and from a sender whose bodies keep failing verification (more than
``NOTIFY_UNVERIFIED_PER_MINUTE`` a minute, counted per process: ``unverified_senders``) a body is verified
*before* anything is stored: one that verifies is stored and applied as usual (a gateway behind the same
proxy address is never held up), one that does not is answered 429 with nothing stored.
Duplicates and ignored event types get the gateway's success reply (a failure makes it retry for a day).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
import threading
import time
import traceback
from datetime import datetime

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Subquery
from django.utils import timezone

from config.audit import Actor
from config.errors import DomainError, NotificationInvalid, SignatureInvalid
from config.logging import log_context
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
    notification operations in config/openapi_plain.py)."""
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
    def store() -> GatewayNotification:
        return GatewayNotification.objects.create(
            gateway=gateway_name, headers=headers, body=body, remote_addr=remote_addr
        )

    row = store() if store_unverified else None
    try:
        gateway = get_gateway(gateway_name)
    except DomainError as exc:
        if row is not None:
            GatewayNotification.objects.filter(pk=row.pk).update(error=exc.message)
        return _UNCONFIGURED.get(gateway_name, _PLAIN_FAIL)
    try:
        notification = gateway.parse_notification(headers, body)
    except (SignatureInvalid, NotificationInvalid) as exc:
        unverified_senders.failed(remote_addr, now=time.time())
        if row is None:
            return None
        _refused_unverified(row, f"{exc.code}: {exc.message}")
        logger.warning("notification %s from %s refused: %s", row.pk, gateway_name, row.error)
        return _refused(gateway.notification_reply(ok=False, message=exc.message), exc.http_status)
    row = row or store()
    with log_context(
        event_id=notification.event_id,
        payment_no=notification.trade.payment_no if notification.trade else None,
        refund_no=notification.refund.refund_no if notification.refund else None,
    ):
        ok, message = notification_process(row=row, notification=notification, gateway=gateway)
    return gateway.notification_reply(ok=ok, message=message)


def _refused_unverified(row: GatewayNotification, error: str) -> None:
    """Keep the evidence of a body that did not verify, bounded: its first bytes, SHA-256 and size."""
    body = bytes(row.body)
    GatewayNotification.objects.filter(pk=row.pk).update(
        error=error,
        body=body[:UNVERIFIED_KEEP_BYTES],
        body_sha256=hashlib.sha256(body).hexdigest(),
        body_size=len(body),
    )
    row.error = error


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


def notification_process(*, row: GatewayNotification, notification: Notification, gateway) -> tuple[bool, str]:
    """Apply a verified notification once. Returns (ok, message) for the gateway's reply.

    One transaction: its first statement claims the event id (the unique (gateway, event_id) constraint
    is the dedupe; a concurrent duplicate waits on it and fails once the first commits) and records what
    verification established; then the notification is applied. A duplicate's claim fails before anything
    else happened in the transaction, so the transaction is rolled back as a whole instead of using a
    savepoint. A failure rolls everything back and is recorded on the row in one UPDATE.
    """
    verified = _verified_fields(notification)
    claim = {**verified, "event_id": notification.event_id, "processed_at": timezone.now(), "error": ""}
    if notification.trade is not None and notification.refund is None:
        # the payment a trade notification is applied to is the one its payment_no names (applying
        # raises NotFound otherwise, which rolls this back): linked in the claim, no second UPDATE
        claim["payment"] = Subquery(Payment.objects.filter(payment_no=notification.trade.payment_no).values("pk")[:1])
    try:
        with transaction.atomic():
            try:
                GatewayNotification.objects.filter(pk=row.pk).update(**claim)
            except IntegrityError:
                raise _Duplicate from None
            payment = _apply(notification, gateway=gateway)
            if "payment" not in claim and payment is not None:
                GatewayNotification.objects.filter(pk=row.pk).update(payment=payment)
    except _Duplicate:
        GatewayNotification.objects.filter(pk=row.pk).update(**verified, duplicate=True, processed_at=timezone.now())
        return True, ""
    except DomainError as exc:
        detail = getattr(exc, "reason", exc.message)  # a refused field: what was received and expected
        GatewayNotification.objects.filter(pk=row.pk).update(**verified, error=f"{exc.code}: {detail}")
        logger.warning("notification %s not applied: %s", row.pk, detail)
        return False, exc.message
    except Exception as exc:  # a crash: keep what verification established and the traceback, then fail loudly
        error = f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc(limit=-CRASH_TRACEBACK_FRAMES)}"
        try:
            GatewayNotification.objects.filter(pk=row.pk).update(**verified, error=error)
        except DatabaseError:
            logger.exception("notification %s: could not record the failure", row.pk)
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
        return notification_process(row=row, notification=_notification_from_parsed(row), gateway=gateway)
    # processed before: apply again (idempotent) without touching the dedupe key
    with transaction.atomic():
        _apply(_notification_from_parsed(row), gateway=gateway)
        GatewayNotification.objects.filter(pk=row.pk).update(processed_at=timezone.now(), error="")
    return True, ""
