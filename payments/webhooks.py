"""Gateway notifications: store raw, verify, dedupe in the database, apply, answer the gateway.

Webhook views are outside request-wide transactions; the raw row is committed first so that a
failed check or a crash keeps the evidence. Duplicates and ignored event types get the
gateway's success reply (a failure makes it retry for a day).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.module_loading import import_string
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from config.audit import Actor
from config.errors import DomainError, NotificationInvalid, SignatureInvalid
from config.logging import log_context
from payments.gateways.base import Notification, NotificationReply, RefundStatus
from payments.gateways.registry import get_gateway
from payments.models import GatewayNotification, Payment
from payments.services import _identity, payment_apply_trade_status

logger = logging.getLogger(__name__)

# used only when the gateway itself is not configured (no adapter to format the answer)
_UNCONFIGURED = {
    "wechat": NotificationReply(503, "application/json", b'{"code":"FAIL","message":"not configured"}'),
}
_PLAIN_FAIL = NotificationReply(503, "text/plain", b"fail")
MAX_BODY = 64 * 1024


def _reply(reply: NotificationReply) -> HttpResponse:
    return HttpResponse(reply.body, status=reply.status, content_type=reply.content_type)


def _parsed(notification: Notification) -> dict:
    def plain(obj):
        data = dataclasses.asdict(obj)
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}

    return {
        "trade": plain(notification.trade) if notification.trade else None,
        "refund": plain(notification.refund) if notification.refund else None,
    }


def notification_receive(
    *, gateway_name: str, headers: dict, body: bytes, remote_addr: str | None
) -> NotificationReply:
    with log_context(gateway=gateway_name):
        return _receive(gateway_name=gateway_name, headers=headers, body=body, remote_addr=remote_addr)


def _receive(*, gateway_name: str, headers: dict, body: bytes, remote_addr: str | None) -> NotificationReply:
    row = GatewayNotification.objects.create(gateway=gateway_name, headers=headers, body=body, remote_addr=remote_addr)
    try:
        gateway = get_gateway(gateway_name)
    except DomainError as exc:
        row.error = exc.message
        row.save(update_fields=["error"])
        return _UNCONFIGURED.get(gateway_name, _PLAIN_FAIL)
    if len(body) > MAX_BODY:
        row.error = "body too large"
        row.save(update_fields=["error"])
        return gateway.notification_reply(ok=False, message="body too large")
    try:
        notification = gateway.parse_notification(headers, body)
    except (SignatureInvalid, NotificationInvalid) as exc:
        row.error = f"{exc.code}: {exc.message}"
        row.save(update_fields=["error"])
        logger.warning("notification %s from %s refused: %s", row.pk, gateway_name, row.error)
        return gateway.notification_reply(ok=False, message=exc.message)
    row.verified = True
    row.event_type = notification.event_type
    if notification.trade:
        row.reference = notification.trade.payment_no
    elif notification.refund:
        row.reference = notification.refund.refund_no
    row.parsed = _parsed(notification)
    row.save(update_fields=["verified", "event_type", "reference", "parsed"])
    with log_context(
        event_id=notification.event_id,
        payment_no=notification.trade.payment_no if notification.trade else None,
        refund_no=notification.refund.refund_no if notification.refund else None,
    ):
        ok, message = notification_process(row=row, notification=notification, gateway=gateway)
    return gateway.notification_reply(ok=ok, message=message)


def notification_process(*, row: GatewayNotification, notification: Notification, gateway) -> tuple[bool, str]:
    """Apply a verified notification once. Returns (ok, message) for the gateway's reply."""
    try:
        with transaction.atomic():
            try:
                with transaction.atomic():
                    GatewayNotification.objects.filter(pk=row.pk).update(event_id=notification.event_id)
            except IntegrityError:
                duplicate = True
            else:
                duplicate = False
            if not duplicate:
                payment = _apply(notification, gateway=gateway)
                GatewayNotification.objects.filter(pk=row.pk).update(
                    processed_at=timezone.now(), payment=payment, error=""
                )
    except DomainError as exc:
        GatewayNotification.objects.filter(pk=row.pk).update(error=f"{exc.code}: {exc.message}")
        logger.warning("notification %s not applied: %s", row.pk, exc.message)
        return False, exc.message
    if duplicate:
        GatewayNotification.objects.filter(pk=row.pk).update(duplicate=True, processed_at=timezone.now())
    return True, ""


def _apply(notification: Notification, *, gateway) -> Payment | None:
    """Apply what the notification says; one Alipay notify can carry a trade and a refund."""
    actor = Actor.gateway(gateway.name)
    payment = None
    if notification.trade is not None:
        payment = payment_apply_trade_status(trade=notification.trade, actor=actor, **_identity(gateway))
    if notification.refund is not None:
        payment = _apply_refund(notification.refund, actor=actor) or payment
    return payment  # neither: an event type we do not act on, acknowledged


def _apply_refund(refund: RefundStatus, *, actor: Actor) -> Payment | None:
    """Refunds live in the refunds app, which imports payments (not the other way): the handler is
    named in settings (PAYMENTS_REFUND_STATUS_HANDLER) like a gateway in the registry."""
    if not settings.PAYMENTS_REFUND_STATUS_HANDLER:
        raise DomainError("No refund handler is configured.", code="refund_unhandled")
    return import_string(settings.PAYMENTS_REFUND_STATUS_HANDLER)(status=refund, actor=actor)


@csrf_exempt
@require_POST
def notify_view(request: HttpRequest, gateway_name: str) -> HttpResponse:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("cookie", "authorization")}
    reply = notification_receive(
        gateway_name=gateway_name, headers=headers, body=request.body, remote_addr=request.META.get("REMOTE_ADDR")
    )
    return _reply(reply)


def _notification_from_parsed(row: GatewayNotification) -> Notification:
    from datetime import datetime as dt

    from payments.gateways.base import RefundState, TradeState, TradeStatus

    def restore(data: dict | None, cls, state_enum, time_fields):
        if not data:
            return None
        values = dict(data)
        values["state"] = state_enum(values["state"])
        for name in time_fields:
            if values.get(name):
                values[name] = dt.fromisoformat(values[name])
        return cls(**values)

    parsed = row.parsed or {}
    return Notification(
        event_id=row.event_id or f"replay-{row.pk}",
        event_type=row.event_type,
        trade=restore(parsed.get("trade"), TradeStatus, TradeState, ("paid_at",)),
        refund=restore(parsed.get("refund"), RefundStatus, RefundState, ("succeeded_at",)),
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
