"""Payment writes. Persist intent, call the gateway outside any row lock, then apply the answer
through the one transition function ``payment_apply_trade_status``.

Lock order: payment, then order, then compartment / wallet.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.audit import Actor
from core.db import prepared_cursor
from core.errors import (
    Conflict,
    GatewayRejected,
    GatewayUnavailable,
    InvalidTransition,
    NotFound,
    TradeAlreadyPaid,
    TradeNotFound,
    ValidationFailed,
)
from core.logging import log_context
from core.transitions import event, locked, transition
from orders.models import Order
from orders.services import order_cancel, order_mark_paid, order_no_new
from payments import hooks
from payments.gateways.base import PrepayRequest, TradeState, TradeStatus
from payments.gateways.registry import get_gateway
from payments.gateways.trust import FieldMismatch, Message, check_trade, trade_expectations
from payments.models import CHANNEL_ROUTES, GATEWAY_NUMBERED, Channel, Payment, ServiceOrder
from wallets.models import WalletTransaction
from wallets.services import wallet_debit

logger = logging.getLogger(__name__)
Status = Payment.Status


@dataclass(frozen=True)
class PaymentStart:
    order_no: str
    channel: str
    openid: str = ""
    client_ip: str | None = None


# --- start -----------------------------------------------------------------------------------


def _payable_order(*, user, order_no: str, now: datetime) -> Order:
    order = Order.objects.filter(order_no=order_no, user=user).first()
    if order is None:
        raise NotFound("Order not found.", details={"order_no": order_no})
    if order.status != Order.Status.PENDING_PAYMENT:
        raise Conflict(
            "This order is not waiting for payment.", code="order_not_payable", details={"status": order.status}
        )
    if order.expires_at <= now:
        raise Conflict("This order has expired; create a new one.", code="order_expired")
    return order


def _refuse_while_service_order_waits(order: Order) -> None:
    """409 ``payment_in_progress`` while a WeChat Pay Score service order of the order waits for the user's
    confirmation (``payments.payscore``): confirming it would start the rental a second way."""
    if order.service_orders.filter(status=ServiceOrder.Status.CREATED).exists():
        raise Conflict(
            "A Pay Score service order of this order waits for confirmation; cancel the order first.",
            code="payment_in_progress",
            details={"channel": Channel.WECHAT_PAYSCORE},
        )


@transaction.atomic
def _payment_create(*, order: Order, channel: str, openid: str, client_ip: str | None, actor: Actor) -> Payment:
    """Persist the intent. The database allows one open payment per order (partial unique index)."""
    order = Order.objects.select_for_update().get(pk=order.pk)  # its amount as it stands under the lock
    if order.status != Order.Status.PENDING_PAYMENT:  # cancelled or paid since it was read
        raise Conflict(
            "This order is not waiting for payment.", code="order_not_payable", details={"status": order.status}
        )
    _refuse_while_service_order_waits(order)
    existing = order.payments.filter(status__in=Payment.OPEN).first()
    if existing:
        if existing.channel == channel:
            return existing  # a retry: prepay again with the same out_trade_no
        raise Conflict(
            "Another payment of this order is open; close it first.",
            code="payment_in_progress",
            details={"payment_no": existing.payment_no, "channel": existing.channel},
        )
    try:
        with transaction.atomic():
            payment = Payment.objects.create(
                payment_no=order_no_new("PY"),
                order=order,
                channel=channel,
                amount_fen=order.amount_fen,
                payer_openid=openid,
                client_ip=client_ip,
            )
    except IntegrityError as exc:
        raise Conflict("Another payment of this order is open.", code="payment_in_progress") from exc
    event(payment, action="create", actor=actor, before="")
    return payment


def payment_start(*, user, request: PaymentStart, now: datetime | None = None) -> Payment:
    """Start paying an order through a channel. Returns the payment with its prepay data (or, for
    the wallet, already succeeded)."""
    now = now or timezone.now()
    if request.channel == Channel.WALLET:
        return payment_pay_with_wallet(user=user, order_no=request.order_no, now=now)
    if request.channel not in CHANNEL_ROUTES or request.channel in GATEWAY_NUMBERED:
        # wechat_payscore starts with a service order (payments.payscore.payscore_start), never a prepay
        raise ValidationFailed("Unknown channel.", details={"channel": request.channel})
    gateway_name, product = CHANNEL_ROUTES[request.channel]
    gateway = get_gateway(gateway_name)  # 503 channel_not_configured before anything is written
    order = _payable_order(user=user, order_no=request.order_no, now=now)
    if product == "jsapi" and not request.openid:
        # 409, not 400: the request is well formed; this user has no WeChat login to take the openid from
        raise Conflict(
            "openid is required for this channel.", code="openid_required", details={"openid": ["Required."]}
        )
    actor = Actor.user(user)
    payment = _payment_create(
        order=order, channel=request.channel, openid=request.openid, client_ip=request.client_ip, actor=actor
    )
    prepay = PrepayRequest(
        payment_no=payment.payment_no,
        amount_fen=payment.amount_fen,
        description=_description(order),
        product=product,
        expires_at=order.expires_at,
        notify_url="",
        openid=request.openid or None,
        client_ip=request.client_ip,
    )
    try:
        result = gateway.create(prepay)
    except GatewayRejected as exc:
        payment_mark_failed(
            payment_no=payment.payment_no,
            actor=Actor.gateway(gateway_name),
            reason=exc.message,
            data={"gateway_code": exc.gateway_code},
        )
        raise
    # GatewayUnavailable propagates: the payment stays "created" and a retry (or reconciliation) heals it
    data = {
        k: v
        for k, v in {
            "pay_params": result.pay_params,
            "code_url": result.code_url,
            "h5_url": result.h5_url,
            "pay_url": result.pay_url,
        }.items()
        if v
    }
    return payment_mark_pending(payment_no=payment.payment_no, prepay=data, actor=Actor.gateway(gateway_name))


@transaction.atomic
def payment_pay_with_wallet(*, user, order_no: str, now: datetime) -> Payment:
    """Pay a rental from the wallet in one transaction: lock the order, payment succeeded, order paid,
    then debit the wallet (ledger row). Not enough balance: 402 and nothing written."""
    order = _payable_order(user=user, order_no=order_no, now=now)
    order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status != Order.Status.PENDING_PAYMENT:
        raise Conflict(
            "This order is not waiting for payment.", code="order_not_payable", details={"status": order.status}
        )
    if order.kind == Order.Kind.WALLET_TOPUP:
        raise Conflict(  # the order's kind, not the request's shape: 409
            "A wallet top-up cannot be paid from the wallet.",
            code="channel_not_allowed",
            details={"channel": Channel.WALLET},
        )
    open_payment = order.payments.filter(status__in=Payment.OPEN).first()
    if open_payment:
        raise Conflict(
            "Another payment of this order is open; close it first.",
            code="payment_in_progress",
            details={"payment_no": open_payment.payment_no, "channel": open_payment.channel},
        )
    _refuse_while_service_order_waits(order)
    actor = Actor.user(user)
    payment = Payment.objects.create(
        payment_no=order_no_new("PY"), order=order, channel=Channel.WALLET, amount_fen=order.amount_fen
    )
    event(payment, action="create", actor=actor, before="")
    payment.paid_at = now
    transition(payment, to=Status.SUCCEEDED, actor=actor, action="paid")
    order_mark_paid(order_id=order.pk, paid_at=now, actor=actor, reference=payment.payment_no, locked_order=order)
    # the debit comes last: the wallet row (one per user, the contended lock when one user pays many
    # orders at once) is held only for the debit and the COMMIT, not for the writes above. Refused
    # (402): the whole transaction is rolled back, nothing above is kept.
    wallet_debit(
        user_id=user.pk,
        amount_fen=payment.amount_fen,
        type=WalletTransaction.Type.PAYMENT,
        reference=payment.payment_no,
        actor=actor,
    )
    return payment


def _description(order: Order) -> str:
    """What the payer's gateway bill and the sandbox cashier show: the product and our order number
    (support finds the order from a customer's bill). <= 127 bytes (WeChat ``description``)."""
    if order.kind == Order.Kind.WALLET_TOPUP:
        return f"Wallet top-up {order.order_no}"
    if order.kind == Order.Kind.LOCKER_OVERTIME:
        return f"Locker overtime {order.hours}h {order.order_no}"
    return f"Locker rental {order.hours}h {order.order_no}"


@transaction.atomic
def payment_mark_pending(*, payment_no: str, prepay: dict, actor: Actor) -> Payment:
    payment = locked(Payment, payment_no=payment_no)
    if payment.status == Status.PENDING:
        payment.prepay = prepay
        payment.save(update_fields=["prepay", "updated_at"])
        return payment
    if payment.status != Status.CREATED:
        return payment  # already settled by a notification that overtook the prepay answer
    payment.prepay = prepay
    transition(payment, to=Status.PENDING, actor=actor, action="prepay")
    return payment


@transaction.atomic
def payment_mark_failed(*, payment_no: str, actor: Actor, reason: str, data: dict | None = None) -> Payment:
    payment = locked(Payment, payment_no=payment_no)
    if payment.status == Status.FAILED:
        return payment
    transition(payment, to=Status.FAILED, actor=actor, action="fail", reason=reason, data=data)
    return payment


# --- applying what a gateway says ----------------------------------------------------------


@transaction.atomic
def payment_apply_trade_status(
    *, trade: TradeStatus, actor: Actor, payment_no: str | None = None, now: datetime | None = None
) -> Payment:
    """The one way a gateway's word (notification, query answer) changes a payment. Idempotent.

    ``payment_no``: the payment we asked about (a query answer must be about it); a notification names
    its own. Every field the gateway's ``CHECKS`` table names (the payment, gateway, app id, merchant
    id, seller id, sub app id, amount, currency) is compared with our payment before anything changes
    (raises ``FieldMismatch``); a duplicate, a late notification and a query racing a notification all
    end in one transition, once. ``now``: the time of the job that asked (default: the clock);
    ``last_synced_at`` moves to it, never back.
    """
    return _apply_trade_status(trade=trade, actor=actor, payment_no=payment_no, now=now)


def synced_at(current: datetime | None, now: datetime) -> datetime:
    """The new ``last_synced_at`` of a row a job (or a notification) has just synced at ``now``: the later of
    the two. It is also the reconciliation lease (``payments.reconciliation.claim_batch``), which must never
    go backwards: a job running with a ``now`` ahead of the clock (or a worker whose clock is ahead) stamped
    it, and a word applied by a process whose clock is behind must not make the row due again at once."""
    return now if current is None or now > current else current


# How final a word is (DESIGN rule 5): the recorded gateway word changes only to a more final one, or to
# another word of the state the payment is in (a late NOTPAY, or a CLOSED after a success, is not recorded).
_TRADE_RANK = {TradeState.PENDING: 0, TradeState.FAILED: 1, TradeState.CLOSED: 1, TradeState.SUCCEEDED: 2}
_PAYMENT_STATE = {
    Status.CREATED: TradeState.PENDING,
    Status.PENDING: TradeState.PENDING,
    Status.FAILED: TradeState.FAILED,
    Status.CLOSED: TradeState.CLOSED,
    Status.SUCCEEDED: TradeState.SUCCEEDED,
}


def _recordable(trade: TradeStatus, payment: Payment) -> bool:
    ours = _PAYMENT_STATE[payment.status]
    return trade.state == ours or _TRADE_RANK[trade.state] > _TRADE_RANK[ours]


def trade_checked(trade: TradeStatus, payment: Payment) -> None:
    """Refuse (``FieldMismatch``) a gateway's word about ``payment`` unless every field its gateway's
    ``CHECKS`` names is ours. ``trade.gateway`` is the adapter that read it, never a value from the wire."""
    gateway = get_gateway(trade.gateway)  # an unknown reader is refused (ChannelNotConfigured)
    expected = trade_expectations(
        payment_no=payment.payment_no,
        payment_gateway=payment.gateway,
        amount_fen=payment.amount_fen,
        identity=gateway.identity(),
    )
    check_trade(gateway.checks, trade, expected)
    if trade.state == TradeState.SUCCEEDED and trade.amount_fen is None:  # money moves only on a checked amount
        amount = next(c for c in gateway.checks.trade if c.field == "amount_fen")
        raise FieldMismatch(amount, gateway=gateway.name, message=Message(trade.source), got=None)


@functools.cache
def _locked_with_order_sql() -> tuple[str, list, list]:
    """The SELECT of ``_locked_with_order`` (built once: the models' columns) and both models' fields."""
    quote = connection.ops.quote_name
    payment_fields, order_fields = Payment._meta.concrete_fields, Order._meta.concrete_fields
    columns = [f"p.{quote(f.column)}" for f in payment_fields] + [f"o.{quote(f.column)}" for f in order_fields]
    sql = (
        f"SELECT {', '.join(columns)} FROM {quote(Payment._meta.db_table)} p"  # noqa: S608 - identifiers only
        f" JOIN {quote(Order._meta.db_table)} o"
        f" ON o.{quote(Order._meta.pk.column)} = p.{quote(Payment._meta.get_field('order').column)}"
        " WHERE p.payment_no = %s FOR UPDATE OF p, o"
    )
    return sql, list(payment_fields), list(order_fields)


def _from_row(model, fields: list, values) -> Payment | Order:
    """A model instance from raw column values, converted as the ORM converts them (JSON, ...)."""
    converted = []
    for field, value in zip(fields, values, strict=True):
        for converter in field.get_db_converters(connection):
            value = converter(value, None, connection)
        converted.append(value)
    return model.from_db(connection.alias, [f.attname for f in fields], converted)


def _locked_with_order(payment_no: str) -> Payment:
    """The payment with its order (``payment.order``), both row-locked by one statement (lock order: payment,
    then order: the rows of ``FOR UPDATE OF`` are locked in that order). ``NotFound`` when there is none.
    Raw SQL, prepared on the server: every notification reads them."""
    sql, payment_fields, order_fields = _locked_with_order_sql()
    with prepared_cursor() as cursor:
        cursor.execute(sql, [payment_no])
        row = cursor.fetchone()
    if row is None:
        raise NotFound("Payment not found.", details={"payment_no": payment_no})
    payment = _from_row(Payment, payment_fields, row[: len(payment_fields)])
    payment.order = _from_row(Order, order_fields, row[len(payment_fields) :])
    return payment


def _apply_trade_status(
    *, trade: TradeStatus, actor: Actor, payment_no: str | None = None, now: datetime | None = None
) -> Payment:
    """The body of ``payment_apply_trade_status``, in the caller's transaction and without a savepoint of
    its own: only for a caller whose transaction is rolled back as a whole when this raises (the
    webhook's processing transaction). Everyone else calls ``payment_apply_trade_status``."""
    payment = _locked_with_order(payment_no or trade.payment_no)
    trade_checked(trade, payment)
    # set before any transition, so that the transition's save writes them too (one UPDATE)
    payment.last_synced_at = synced_at(payment.last_synced_at, now or timezone.now())
    if _recordable(trade, payment):
        payment.gateway_state = trade.gateway_state or trade.state
    if trade.state == TradeState.SUCCEEDED:
        if payment.status != Status.SUCCEEDED:
            _payment_succeeded(payment, trade=trade, actor=actor)
            return payment
    elif trade.state == TradeState.CLOSED and payment.status in Payment.OPEN:
        transition(payment, to=Status.CLOSED, actor=actor, action="close", reason=trade.gateway_state)
        return payment
    elif trade.state == TradeState.FAILED and payment.status in Payment.OPEN:
        transition(payment, to=Status.FAILED, actor=actor, action="fail", reason=trade.gateway_state)
        return payment
    payment.save(update_fields=["last_synced_at", "gateway_state", "updated_at"])  # no transition
    return payment


def _payment_succeeded(payment: Payment, *, trade: TradeStatus, actor: Actor) -> None:
    """Money arrived. If the order still waits for it, the order is paid; otherwise (paid by another
    payment, or cancelled) the payment is kept and flagged, and reconciliation refunds it."""
    payment.gateway_trade_no = trade.gateway_trade_no or payment.gateway_trade_no
    payment.paid_at = trade.paid_at or timezone.now()
    order = payment.order  # locked with the payment (_locked_with_order)
    if order.status != Order.Status.PENDING_PAYMENT:
        payment.flag = "late_payment" if order.status == Order.Status.CANCELLED else "double_payment"
        logger.warning(
            "payment %s succeeded for order %s in %s: flagged %s",
            payment.payment_no,
            order.order_no,
            order.status,
            payment.flag,
        )
    transition(
        payment,
        to=Status.SUCCEEDED,
        actor=actor,
        action="paid",
        data={"gateway_trade_no": payment.gateway_trade_no, "flag": payment.flag},
        one_statement=("gateway_trade_no", "gateway_state", "flag", "paid_at", "last_synced_at"),  # set above
    )
    if not payment.flag:  # the order is locked already (lock order: payment, then order): not again
        order_mark_paid(
            order_id=order.pk, paid_at=payment.paid_at, actor=actor, reference=payment.payment_no, locked_order=order
        )
    else:  # refunds imports payments, not the other way: it registered how (payments.hooks)
        refund = hooks.flagged_payment_refund()
        transaction.on_commit(lambda: refund(payment.pk), robust=True)


def payment_sync(*, payment_no: str, actor: Actor, now: datetime | None = None) -> Payment:
    """Ask the gateway how the trade stands and apply the answer (``now``: the asking job's time)."""
    with log_context(payment_no=payment_no):
        return _payment_sync(payment_no=payment_no, actor=actor, now=now)


def _payment_sync(*, payment_no: str, actor: Actor, now: datetime | None) -> Payment:
    payment = Payment.objects.filter(payment_no=payment_no).first()
    if payment is None:
        raise NotFound("Payment not found.")
    if payment.channel == Channel.WALLET or payment.out_trade_no is None:
        return payment  # the wallet; or a Pay Score collection, recorded paid from its service order's word
    gateway = get_gateway(payment.gateway)
    try:
        trade = gateway.query(payment.payment_no)
    except TradeNotFound:
        if payment.status == Status.CREATED:  # the prepay never reached the gateway
            return payment
        raise
    try:
        return payment_apply_trade_status(trade=trade, actor=actor, payment_no=payment.payment_no, now=now)
    except FieldMismatch as exc:
        payment_record_refusal(payment_id=payment.pk, refusal=exc, actor=actor)
        raise


def payment_record_refusal(*, payment_id: int, refusal: FieldMismatch, actor: Actor) -> None:
    """Audit a gateway answer we refused (nothing else changes): a ``refused`` event naming the field."""
    payment = Payment.objects.get(pk=payment_id)
    logger.warning("payment %s: gateway answer refused: %s", payment.payment_no, refusal.message)
    event(payment, action="refused", actor=actor, before=payment.status, reason=refusal.message, data=refusal.details)


def payment_close(*, payment_no: str, actor: Actor, reason: str) -> Payment:
    """Close an open payment: at the gateway first, then here. If the gateway says it was paid,
    apply that instead and answer ``trade_already_paid``."""
    with log_context(payment_no=payment_no):
        return _payment_close(payment_no=payment_no, actor=actor, reason=reason)


def _payment_close(*, payment_no: str, actor: Actor, reason: str) -> Payment:
    payment = Payment.objects.filter(payment_no=payment_no).first()
    if payment is None:
        raise NotFound("Payment not found.")
    if payment.status not in Payment.OPEN:
        if payment.status == Status.CLOSED:
            return payment
        raise InvalidTransition("payment", payment.status, Status.CLOSED)
    _close_at_gateway(payment, actor=actor)
    return _payment_mark_closed(payment_no=payment_no, actor=actor, reason=reason)


def _close_at_gateway(payment: Payment, *, actor: Actor, now: datetime | None = None) -> None:
    """Close the trade at the gateway. Paid after all: the payment is applied instead and this
    answers ``trade_already_paid``; never reached the gateway: nothing to close there."""
    gateway = get_gateway(payment.gateway)
    try:
        gateway.close(payment.payment_no)
    except TradeAlreadyPaid:
        payment = payment_sync(payment_no=payment.payment_no, actor=actor, now=now)
        raise Conflict(
            "The payment was completed before it could be closed.",
            code="trade_already_paid",
            details={"payment_no": payment.payment_no, "status": payment.status},
        ) from None
    except TradeNotFound:
        pass


@transaction.atomic
def _payment_mark_closed(*, payment_no: str, actor: Actor, reason: str) -> Payment:
    payment = locked(Payment, payment_no=payment_no)
    if payment.status in Payment.OPEN:
        transition(payment, to=Status.CLOSED, actor=actor, action="close", reason=reason)
    return payment


def payment_expire(*, payment: Payment, now: datetime, actor: Actor) -> Payment:
    """The order of an open gateway payment expired: close the trade at the gateway first, then, in
    one transaction, the payment and, when it waits for no other payment, the order (cancelled, its
    compartment released). Paid after all: ``trade_already_paid`` (the payment was applied)."""
    with log_context(payment_no=payment.payment_no):
        if payment.status in Payment.OPEN:
            _close_at_gateway(payment, actor=actor, now=now)
        with transaction.atomic():
            payment = locked(Payment, payment_no=payment.payment_no)
            if payment.status in Payment.OPEN:
                transition(payment, to=Status.CLOSED, actor=actor, action="close", reason="order expired")
            order = Order.objects.select_for_update().get(pk=payment.order_id)
            if (
                order.status == Order.Status.PENDING_PAYMENT
                and order.expires_at <= now
                and not order.payments.filter(status__in=Payment.OPEN).exists()
            ):
                order_cancel(order_id=order.pk, actor=actor, reason="expired unpaid", locked_order=order)
        return payment


def payment_open_for_order(order: Order) -> list[Payment]:
    return list(order.payments.filter(status__in=Payment.OPEN))


def payments_close_for_cancel(*, order: Order, actor: Actor, reason: str) -> None:
    """Before the owner's cancel of ``order`` (``orders.hooks.on_user_cancel``, registered in
    ``PaymentsConfig.ready``): its open payments are closed at the gateway (one that turns out to be paid
    wins: the order is then paid and the cancel answers 409), and so is a Pay Score service order waiting
    for confirmation (confirmed meanwhile: the rental started, 409). Outside any transaction."""
    for payment in payment_open_for_order(order):
        payment_close(payment_no=payment.payment_no, actor=actor, reason="order cancelled")
    from payments.payscore import payscore_cancel_for_order  # payscore imports this module

    payscore_cancel_for_order(order=order, actor=actor, reason="order cancelled")


def payment_after_return(*, returned: TradeStatus, actor: Actor) -> Payment | None:
    """The payer came back from the gateway's page with signed parameters (``returned``). They are
    checked like every gateway word (``FieldMismatch`` when not ours: nothing is asked or changed) but
    never trusted for state: if the notification has not arrived, ask the gateway."""
    payment = Payment.objects.filter(payment_no=returned.payment_no).first()
    if payment is None:
        return None
    trade_checked(returned, payment)
    if payment.status in Payment.OPEN:
        try:
            payment = payment_sync(payment_no=payment.payment_no, actor=actor)
        except (GatewayUnavailable, GatewayRejected) as exc:
            logger.warning("sync after return of %s failed: %s", payment.payment_no, exc)
    return payment


def payment_record_refund(*, payment: Payment, refund_no: str, amount_fen: int, actor: Actor) -> None:
    """Count a succeeded refund of ``amount_fen`` (fen, > 0) against ``payment``, which the caller's
    transaction has locked (``select_for_update``): ``refunded_fen`` grows and a ``refund`` PaymentEvent
    (status unchanged) records it. Two statements. ``refunds`` calls it; it never writes payments itself."""
    payment.refunded_fen += amount_fen
    payment.save(update_fields=["refunded_fen", "updated_at"])
    event(
        payment,
        action="refund",
        actor=actor,
        data={"refund_no": refund_no, "amount_fen": amount_fen, "refunded_fen": payment.refunded_fen},
    )
