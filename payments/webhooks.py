"""Gateway notifications: store raw, verify, dedupe in the database, apply, answer the gateway.

Webhook views are outside request-wide transactions; the raw row is committed first so that a
failed check or a crash keeps the evidence. Duplicates and ignored event types get the
gateway's success reply (a failure makes it retry for a day).

Anonymous junk cannot fill the inbox: only the three gateways' names are routed (anything else:
404, nothing stored); a body over the gateway's limit (``BODY_LIMITS``), headers over
``HEADER_LIMIT`` or a body without a Content-Length are refused before a row is written (413, 431,
411); a body that does not verify is kept only as its first ``UNVERIFIED_KEEP_BYTES`` bytes with its
SHA-256 and size; and from a sender whose bodies keep failing verification (more than
``NOTIFY_UNVERIFIED_PER_MINUTE`` a minute, counted per process) a body is verified *before* anything
is stored: one that verifies is stored and applied as usual (a gateway behind the same proxy address
is never held up), one that does not is answered 429 with nothing stored.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
import threading
import time
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Subquery
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.module_loading import import_string
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from core.api import error_body
from core.audit import Actor
from core.errors import DomainError, NotificationInvalid, SignatureInvalid
from core.logging import log_context
from payments.gateways.base import Notification, NotificationReply, RefundStatus
from payments.gateways.registry import GATEWAY_NAMES, get_gateway
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


def _reply(reply: NotificationReply) -> HttpResponse:
    return HttpResponse(reply.body, status=reply.status, content_type=reply.content_type)


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
    except Exception as exc:  # a crash: keep what verification established and the error, then fail loudly
        try:
            GatewayNotification.objects.filter(pk=row.pk).update(**verified, error=f"{type(exc).__name__}: {exc}")
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
    """Refunds live in the refunds app, which imports payments (not the other way): the handler is
    named in settings (PAYMENTS_REFUND_STATUS_HANDLER) like a gateway in the registry."""
    if not settings.PAYMENTS_REFUND_STATUS_HANDLER:
        raise DomainError("No refund handler is configured.", code="refund_unhandled")
    return import_string(settings.PAYMENTS_REFUND_STATUS_HANDLER)(status=refund, actor=actor)


def _refusal(status: int, code: str, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse(error_body(code, message), status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


@csrf_exempt
@require_POST
def notify_view(request: HttpRequest, gateway_name: str) -> HttpResponse:
    """Adapt HTTP: refuse what is not a gateway's notification before anything is stored, then receive."""
    if gateway_name not in GATEWAY_NAMES:
        return _refusal(404, "not_found", "No such notification endpoint.")
    limit = BODY_LIMITS[gateway_name]
    if "CONTENT_LENGTH" not in request.META:  # a chunked body: the gateways always say how long theirs are
        return _refusal(411, "length_required", "A notification must carry its Content-Length.")
    try:
        declared = int(request.META["CONTENT_LENGTH"] or 0)
    except ValueError:
        return _refusal(400, "invalid_input", "Bad Content-Length.")
    if declared > limit:
        return _refusal(413, "body_too_large", f"A {gateway_name} notification is at most {limit} bytes.")
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("cookie", "authorization")}
    if sum(len(k) + len(v) for k, v in headers.items()) > HEADER_LIMIT:
        return _refusal(431, "headers_too_large", f"A notification's headers are at most {HEADER_LIMIT} bytes.")
    body = request.read(limit + 1)  # never more than the limit, whatever Content-Length said
    if len(body) > limit:
        return _refusal(413, "body_too_large", f"A {gateway_name} notification is at most {limit} bytes.")
    remote_addr = request.META.get("REMOTE_ADDR")
    flooding = unverified_senders.over_limit(remote_addr, limit=settings.NOTIFY_UNVERIFIED_PER_MINUTE, now=time.time())
    reply = notification_receive(
        gateway_name=gateway_name, headers=headers, body=body, remote_addr=remote_addr, store_unverified=not flooding
    )
    if reply is None:  # from a flooding sender and it did not verify: nothing stored
        return _refusal(429, "throttled", "Too many notifications that do not verify.", Retry_After="60")
    return _reply(reply)


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
