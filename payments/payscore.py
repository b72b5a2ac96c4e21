"""Pay after use with WeChat Pay Score: service-order writes, one locked and audited transition each.

The flow (``ServiceOrder``): ``payscore_start`` creates the service order at WeChat (outside any row lock)
and returns what the mini-program needs to confirm it; WeChat's word that the user confirmed
(``PAYSCORE.USER_CONFIRM`` or a query) starts the rental (``order_start_after_use``: compartment occupied,
pickup code issued). The pickup completes the rental (``orders.services.order_complete``), which sends
``payscore_bill_order``: the final amount for the time used (``lockers.pricing.price_after_use``: the paid
time's price plus the overtime the cashier would ask, within the risk fund) is recorded, then sent to WeChat
(``payscore_complete``); WeChat collects and notifies ``PAYSCORE.USER_PAID``, and the money is recorded as a
``Payment`` of channel ``wechat_payscore`` (``_record_collection``), which finance reports, reconciles against
WeChat's bill (``bill_entries_as_ours``) and refunds by its ``transaction_id`` like any payment. An order
cancelled (or expired) before confirmation cancels its service order at WeChat first.

Every word from WeChat goes through ``service_order_apply``, which refuses it unless every field
``PAYSCORE_CHECKS`` names is ours (``FieldMismatch``). ``payscore_reconcile`` asks WeChat about every
open service order, re-sends a completion whose answer was lost and cancels unconfirmed ones whose order
expired. Lock order: service order, then order, then compartment.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core.audit import Actor
from core.errors import (
    Conflict,
    DomainError,
    GatewayRejected,
    GatewayUnavailable,
    InvalidTransition,
    TradeNotFound,
)
from core.logging import log_context
from core.transitions import event, locked, transition
from lockers.pricing import price_after_use
from orders.models import Order
from orders.services import order_cancel, order_no_new, order_start_after_use
from payments.gateways.bills import Bill, BillEntry, bill_totals
from payments.gateways.registry import get_gateway
from payments.gateways.trust import FieldMismatch, check_trade
from payments.gateways.wechat_payscore import (
    PAYSCORE_CHECKS,
    ServiceOrderRequest,
    ServiceOrderState,
    ServiceOrderStatus,
    payscore_expectations,
)
from payments.models import GATEWAY_NUMBERED, Channel, Payment, ServiceOrder

logger = logging.getLogger(__name__)
Status = ServiceOrder.Status
RECONCILE = Actor.system("reconcile")
RENTAL_ENDED = (Order.Status.COMPLETED, Order.Status.ABANDONED)  # a rental billed after use is billed then
# WeChat's word -> the status it moves a service order to (None: nothing to move)
_TARGET = {
    ServiceOrderState.CREATED: None,
    ServiceOrderState.CONFIRMED: Status.CONFIRMED,
    ServiceOrderState.COLLECTING: Status.COMPLETED,
    ServiceOrderState.PAID: Status.PAID,
    ServiceOrderState.REVOKED: Status.CANCELLED,
    ServiceOrderState.EXPIRED: Status.EXPIRED,
}


def risk_fund_fen(order: Order, *, now: datetime | None = None) -> int:
    """The most a Pay Score rental can be billed: its final amount (``lockers.pricing.price_after_use``) if it
    ended ``PAYSCORE_MAX_HOURS`` after it started (the pickup code's validity): the booked time's price plus
    the overtime the cashier would ask then. Raises 409 ``no_price_plan``."""
    start = now or timezone.now()
    return price_after_use(
        size=order.compartment.size,
        started_at=start,
        ended_at=start + timedelta(hours=settings.PAYSCORE_MAX_HOURS),
        paid_hours=order.hours,
        grace=settings.PICKUP_CODE_GRACE,
        max_fen=None,
    ).amount_fen


# --- start -------------------------------------------------------------------------------------


def payscore_start(*, user, order_no: str, now: datetime | None = None) -> ServiceOrder:
    """Start a rental without paying: create the Pay Score service order. Returns it with ``package``
    (``payscore_confirm_params`` builds the mini-program's ``extraData``). Errors: 503
    ``channel_not_configured`` (no service id), 404, 409 ``order_not_payable`` / ``order_expired`` /
    ``payment_in_progress`` / ``channel_not_allowed`` (a top-up), 409 ``gateway_rejected`` (the service order
    is failed), 502 ``gateway_unavailable`` (it stays ``created``: a retry sends the same out_order_no)."""
    from payments.services import _payable_order

    now = now or timezone.now()
    gateway = get_gateway("wechat")
    gateway.payscore_service_id()  # 503 before anything is written
    order = _payable_order(user=user, order_no=order_no, now=now)
    if order.kind != Order.Kind.LOCKER_RENTAL:
        raise Conflict("Only a locker rental can be paid after use.", code="channel_not_allowed")
    actor = Actor.user(user)
    so = _service_order_create(order=order, actor=actor)
    if so.status != Status.CREATED or so.package:
        return so  # a retry of a start that reached WeChat
    request = ServiceOrderRequest(
        out_order_no=so.out_order_no,
        service_introduction="Locker rental",
        risk_fund_fen=so.risk_fund_fen,
        start_time=so.created_at,  # stable: a retry sends the identical request (WeChat's idempotency)
        notify_url="",
        attach=order.order_no,
    )
    try:
        answer = gateway.payscore_create(request)
    except GatewayRejected as exc:
        _mark_failed(so.out_order_no, actor=Actor.gateway("wechat"), reason=exc.message)
        raise
    return service_order_apply(status=answer, actor=Actor.gateway("wechat"), out_order_no=so.out_order_no)


@transaction.atomic
def _service_order_create(*, order: Order, actor: Actor) -> ServiceOrder:
    order = Order.objects.select_for_update().get(pk=order.pk)
    existing = order.service_orders.filter(status=Status.CREATED).first()
    if existing:
        return existing
    open_payment = order.payments.filter(status__in=Payment.OPEN).first()
    if open_payment:
        raise Conflict(
            "Another payment of this order is open; close it first.",
            code="payment_in_progress",
            details={"payment_no": open_payment.payment_no, "channel": open_payment.channel},
        )
    try:
        with transaction.atomic():
            so = ServiceOrder.objects.create(
                out_order_no=order_no_new("PS"), order=order, risk_fund_fen=risk_fund_fen(order)
            )
    except IntegrityError as exc:
        raise Conflict("This order already has a Pay Score service order.", code="payment_in_progress") from exc
    event(so, action="create", actor=actor, data={"risk_fund_fen": so.risk_fund_fen}, before="")
    return so


@transaction.atomic
def _mark_failed(out_order_no: str, *, actor: Actor, reason: str) -> None:
    so = locked(ServiceOrder, out_order_no=out_order_no)
    if so.status == Status.CREATED:
        transition(so, to=Status.FAILED, actor=actor, action="fail", reason=reason)


def payscore_confirm_params(so: ServiceOrder) -> dict | None:
    """What the mini-program passes to ``wx.openBusinessView`` while the order waits for confirmation."""
    if so.status != Status.CREATED or not so.package:
        return None
    extra = get_gateway("wechat").payscore_confirm_params(package=so.package)
    return {"businessType": "wxpayScoreUse", "extraData": extra}


# --- applying what WeChat says --------------------------------------------------------------------


@transaction.atomic
def service_order_apply(
    *, status: ServiceOrderStatus, actor: Actor, out_order_no: str | None = None, now: datetime | None = None
) -> ServiceOrder:
    """The one way WeChat's word (answer, query, notification) changes a service order. Idempotent.

    Refused (``FieldMismatch``, nothing changes) unless the out_order_no, service id, app id, merchant id,
    risk fund and amounts are ours (``PAYSCORE_CHECKS``). Confirmed: the rental starts; collecting: the
    completion was accepted; paid: the money is in; revoked / expired: the order is cancelled if it had
    not started.
    """
    return _apply(status=status, actor=actor, out_order_no=out_order_no, now=now)


def _apply(
    *, status: ServiceOrderStatus, actor: Actor, out_order_no: str | None = None, now: datetime | None = None
) -> ServiceOrder:
    """``service_order_apply``'s body in the caller's transaction (the webhook's, rolled back as a whole)."""
    so = locked(ServiceOrder, out_order_no=out_order_no or status.out_order_no)
    gateway = get_gateway("wechat")
    expected = payscore_expectations(
        out_order_no=so.out_order_no,
        risk_fund_fen=so.risk_fund_fen,
        total_fen=so.total_fen,
        service_id=gateway.payscore_service_id(),
        identity=gateway.identity(),
    )
    check_trade(PAYSCORE_CHECKS, status, expected)
    now = now or timezone.now()
    so.last_synced_at = max(so.last_synced_at or now, now)
    so.package = status.package or so.package
    so.gateway_order_id = status.order_id or so.gateway_order_id
    target = _TARGET[status.state]
    skips_confirm = so.status == Status.CREATED and target in (Status.COMPLETED, Status.PAID)  # a lost USER_CONFIRM
    moves = target is not None and (target in ServiceOrder.TRANSITIONS[so.status] or skips_confirm)
    if moves or target == so.status or (target is None and so.status == Status.CREATED):
        so.gateway_state = status.gateway_state[:32]  # a word less final than what we know is not recorded
    if not moves:
        so.save()
        return so  # nothing to move (a duplicate, or a word less final than what we know)
    if target == Status.CONFIRMED or skips_confirm:
        _confirm(so, status=status, actor=actor, now=now)
    if target == Status.COMPLETED and so.status == Status.CONFIRMED:
        so.completed_at = now
        transition(so, to=Status.COMPLETED, actor=actor, action="complete", data={"total_fen": so.total_fen})
    elif target == Status.PAID and so.status in (Status.CONFIRMED, Status.COMPLETED):
        so.paid_fen = status.paid_fen or 0
        so.paid_at = status.paid_at or now
        so.completed_at = so.completed_at or so.paid_at
        so.gateway_trade_no = status.transaction_id or so.gateway_trade_no
        transition(so, to=Status.PAID, actor=actor, action="paid", data={"paid_fen": so.paid_fen})
        _record_collection(so, actor=actor)
    elif target in (Status.CANCELLED, Status.EXPIRED):
        transition(so, to=target, actor=actor, action="cancel" if target == Status.CANCELLED else "expire")
        order = Order.objects.select_for_update().get(pk=so.order_id)
        if order.status == Order.Status.PENDING_PAYMENT:
            order_cancel(order_id=order.pk, actor=actor, reason=f"Pay Score {target}", locked_order=order)
    return so


def _record_collection(so: ServiceOrder, *, actor: Actor) -> None:
    """WeChat collected ``so.paid_fen``: the money is recorded as a ``Payment`` of channel ``wechat_payscore``
    (amount = the collected total in fen, ``gateway_trade_no`` = the collection's ``transaction_id``), paid
    through the payments transition (one audited ``paid`` event), in the caller's transaction (the service
    order locked; the one place every word of WeChat that it is paid goes through: notification, sync,
    reconciliation). From then on every finance path (dashboard, settlement report, metrics, bill
    reconciliation, refunds by ``transaction_id``) treats it as any payment. Once per service order
    (``ServiceOrder.payment`` is one-to-one). The order is not touched: it was fulfilled at confirmation.
    A zero-amount completion collects nothing: no payment."""
    if so.payment_id is not None or not so.paid_fen:
        return
    if not so.gateway_trade_no:  # WeChat names the debit in collection.details; without it nothing can refund it
        logger.warning("service order %s paid %s fen without a transaction_id", so.out_order_no, so.paid_fen)
        return
    payment = Payment.objects.create(
        payment_no=order_no_new("PY"),
        order_id=so.order_id,
        channel=Channel.WECHAT_PAYSCORE,
        amount_fen=so.paid_fen,
        gateway_trade_no=so.gateway_trade_no,
        gateway_state=so.gateway_state,
        payer_openid=so.payer_openid,
        paid_at=so.paid_at,
        last_synced_at=so.last_synced_at,
    )
    transition(
        payment,
        to=Payment.Status.SUCCEEDED,
        actor=actor,
        action="paid",
        data={"gateway_trade_no": payment.gateway_trade_no, "out_order_no": so.out_order_no},
    )
    so.payment = payment
    so.save(update_fields=["payment", "updated_at"])


def _confirm(so: ServiceOrder, *, status: ServiceOrderStatus, actor: Actor, now: datetime) -> None:
    """The user confirmed: the rental starts (fulfilled as paid; the pickup code valid as long as it bills)."""
    so.confirmed_at = now
    so.payer_openid = (status.openid or so.payer_openid)[:64]
    transition(so, to=Status.CONFIRMED, actor=actor, action="confirm")
    order = Order.objects.select_for_update().get(pk=so.order_id)
    if order.status != Order.Status.PENDING_PAYMENT:
        logger.warning("service order %s confirmed for order %s in %s", so.out_order_no, order.order_no, order.status)
        return  # paid otherwise, or cancelled: reconciliation cancels the service order (not billed)
    order_start_after_use(
        order_id=order.pk,
        started_at=now,
        pickup_until=now + timedelta(hours=settings.PAYSCORE_MAX_HOURS),
        actor=actor,
        reference=so.out_order_no,
        locked_order=order,
    )


# --- billing at the end of the rental --------------------------------------------------------------


def payscore_bill_order(*, order_id: int, actor: Actor, now: datetime | None = None) -> ServiceOrder | None:
    """The rental ``order_id`` ended: record the final amount of its confirmed service order, then send it
    to WeChat (``payscore_complete``, outside any lock). Idempotent: an amount recorded before is sent
    again as it was. None when the order has no confirmed service order."""
    so = ServiceOrder.objects.filter(order_id=order_id, status=Status.CONFIRMED).first()
    if so is None:
        return None
    so = _record_total(out_order_no=so.out_order_no, actor=actor)
    return _send_completion(so, actor=actor, now=now)


@transaction.atomic
def _record_total(*, out_order_no: str, actor: Actor) -> ServiceOrder:
    so = locked(ServiceOrder, out_order_no=out_order_no)
    if so.status != Status.CONFIRMED or so.total_fen is not None:
        return so
    order = Order.objects.get(pk=so.order_id)
    ended_at = order.completed_at or order.abandoned_at  # picked up, or left and abandoned (the job's time)
    if order.status not in RENTAL_ENDED or ended_at is None:
        raise Conflict("The rental has not ended.", code="rental_running", details={"order_no": order.order_no})
    quote = price_after_use(
        size=order.compartment.size,
        started_at=so.confirmed_at,
        ended_at=ended_at,
        paid_hours=order.hours,
        grace=settings.PICKUP_CODE_GRACE,
        max_fen=so.risk_fund_fen,
    )
    so.total_fen, so.ended_at, so.billing = quote.amount_fen, ended_at, quote.as_dict()
    so.save()
    event(so, action="bill", actor=actor, before=so.status, data={"total_fen": so.total_fen, **quote.as_dict()})
    return so


def _send_completion(so: ServiceOrder, *, actor: Actor, now: datetime | None) -> ServiceOrder:
    if so.status != Status.CONFIRMED or so.total_fen is None:
        return so
    gateway = get_gateway("wechat")
    hours = so.billing.get("billed_hours") or so.billing.get("hours", 1)  # what the plan bills (its minimum)
    with log_context(out_order_no=so.out_order_no):
        answer = gateway.payscore_complete(
            so.out_order_no,
            total_fen=so.total_fen,
            items=[(f"Locker {hours}h", so.total_fen)],
            end_time=so.ended_at,
        )
    return service_order_apply(status=answer, actor=Actor.gateway("wechat"), out_order_no=so.out_order_no, now=now)


# --- cancel, sync, reconcile --------------------------------------------------------------------


def payscore_cancel(*, out_order_no: str, actor: Actor, reason: str) -> ServiceOrder:
    """Cancel an unconfirmed service order at WeChat first, then here (its order, if still unpaid, is
    cancelled too). Confirmed meanwhile: WeChat's word is applied instead and this answers 409."""
    so = ServiceOrder.objects.get(out_order_no=out_order_no)
    if so.status != Status.CREATED:
        if so.status in (Status.CANCELLED, Status.EXPIRED, Status.FAILED):
            return so
        raise InvalidTransition("service order", so.status, Status.CANCELLED)
    gateway = get_gateway("wechat")
    status = gateway.payscore_query(out_order_no)
    if status.state is ServiceOrderState.CREATED:
        gateway.payscore_cancel(out_order_no, reason=reason)
        status = gateway.payscore_query(out_order_no)
    so = service_order_apply(status=status, actor=actor, out_order_no=out_order_no)
    if so.status not in (Status.CANCELLED, Status.EXPIRED):
        raise Conflict(
            "The service order was confirmed before it could be cancelled.",
            code="invalid_transition",
            details={"out_order_no": so.out_order_no, "status": so.status},
        )
    return so


def payscore_cancel_for_order(*, order: Order, actor: Actor, reason: str) -> None:
    """Cancel the order's unconfirmed service orders (the owner cancels the rental before it started)."""
    for so in order.service_orders.filter(status=Status.CREATED):
        payscore_cancel(out_order_no=so.out_order_no, actor=actor, reason=reason)


def payscore_sync(*, out_order_no: str, actor: Actor, now: datetime | None = None) -> ServiceOrder:
    """Ask WeChat how the service order stands and apply the answer (refusals are audited, then raised)."""
    so = ServiceOrder.objects.get(out_order_no=out_order_no)
    try:
        status = get_gateway("wechat").payscore_query(out_order_no)
    except TradeNotFound:
        if so.status == Status.CREATED and not so.package:
            return so  # the create never reached WeChat
        raise
    try:
        return service_order_apply(status=status, actor=actor, out_order_no=out_order_no, now=now)
    except FieldMismatch as exc:
        event(so, action="refused", actor=actor, before=so.status, reason=exc.message, data=exc.details)
        raise


def payscore_reconcile_one(so: ServiceOrder, *, now: datetime) -> ServiceOrder:
    """Heal one open service order: sync; a rental that ended gets billed (or its lost completion sent
    again); an unconfirmed one whose order expired is cancelled at WeChat."""
    so = payscore_sync(out_order_no=so.out_order_no, actor=RECONCILE, now=now)
    if so.status == Status.CONFIRMED:
        order = Order.objects.get(pk=so.order_id)
        if order.status in RENTAL_ENDED:
            return payscore_bill_order(order_id=order.pk, actor=RECONCILE, now=now) or so
    if so.status == Status.CREATED and so.order.expires_at <= now:
        return payscore_cancel(out_order_no=so.out_order_no, actor=RECONCILE, reason="order expired")
    return so


def payscore_reconcile(*, now: datetime, size: int = 100) -> dict[str, int]:
    """Every open service order not synced in the last ``RECONCILE_INTERVAL_SECONDS``, one at a time."""
    since = now - timedelta(seconds=settings.RECONCILE_INTERVAL_SECONDS)
    due = ServiceOrder.objects.filter(status__in=ServiceOrder.OPEN).filter(
        Q(last_synced_at__isnull=True) | Q(last_synced_at__lte=since)
    )
    report = {"service_orders": 0, "errors": 0}
    for so in due.select_related("order").order_by("id")[:size]:
        report["service_orders"] += 1
        try:
            with log_context(out_order_no=so.out_order_no, order_no=so.order.order_no):
                payscore_reconcile_one(so, now=now)
        except (GatewayUnavailable, DomainError) as exc:
            report["errors"] += 1
            logger.warning("reconcile service order %s: %s", so.out_order_no, exc)
    return report


def service_orders_unpaid(*, now: datetime) -> list[ServiceOrder]:
    """For finance: completed (WeChat keeps collecting) but not paid ``PAYSCORE_UNPAID_AFTER`` later."""
    limit = now - timedelta(seconds=settings.PAYSCORE_UNPAID_AFTER_SECONDS)
    return list(
        ServiceOrder.objects.filter(status=Status.COMPLETED, completed_at__lte=limit)
        .select_related("order")
        .order_by("completed_at")
    )


def bill_entries_as_ours(entries: list[BillEntry]) -> list[BillEntry]:
    """A WeChat trade bill lists a Pay Score collection (and its refunds) under the out_trade_no WeChat
    generated while it collected, never ours (``sandbox.wechat_payscore``): the lines whose 微信订单号
    (``gateway_trade_no``) is one of our ``wechat_payscore`` payments are given that payment's payment_no as
    out_trade_no, so that bill reconciliation matches them like any line (no ``missing`` / ``foreign``).
    Other lines are returned as they are; the bill's own totals are kept. One query per 1000 lines."""
    ids = sorted({e.gateway_trade_no for e in entries if e.gateway_trade_no})
    ours: dict[str, str] = {}
    for i in range(0, len(ids), 1000):
        ours.update(
            Payment.objects.filter(channel__in=GATEWAY_NUMBERED, gateway_trade_no__in=ids[i : i + 1000]).values_list(
                "gateway_trade_no", "payment_no"
            )
        )
    if not ours:
        return entries
    mapped = [replace(e, out_trade_no=ours[e.gateway_trade_no]) if e.gateway_trade_no in ours else e for e in entries]
    return Bill(mapped, totals=bill_totals(entries))
