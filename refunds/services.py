"""Refund workflow: request -> approve/reject (maker-checker) -> submit -> apply the gateway's word.

Lock order: payment, then refund, then order, then wallet. The cap (refunds not rejected or
failed never exceed the amount paid) is checked under the payment's row lock, so concurrent
requests cannot exceed it.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from datetime import datetime, timedelta
from typing import cast

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from core.audit import Actor
from core.errors import (
    Conflict,
    DomainError,
    GatewayRejected,
    InvalidTransition,
    NotFound,
    RefundNotFound,
    ValidationFailed,
)
from core.logging import log_context
from core.transitions import event, transition
from lockers.selectors import door_opened_by_customer, doors_opened_by_customer
from orders.models import Order
from orders.services import order_mark_refunded, order_no_new
from payments.gateways.base import (
    AbnormalRefundDestination,
    AbnormalRefundRequest,
    AbnormalRefunds,
    RefundRequest,
    RefundState,
    RefundStatus,
)
from payments.gateways.registry import get_gateway
from payments.gateways.trust import (
    FieldMismatch,
    Message,
    check_refund,
    cumulative_refund_totals,
    refund_expectations,
)
from payments.models import Channel, Payment
from payments.services import payment_record_refund, synced_at
from refunds.models import Refund, RefundEvent
from wallets.models import WalletTransaction
from wallets.services import wallet_credit, wallet_debit

logger = logging.getLogger(__name__)
Status = Refund.Status
REFUNDABLE_ORDER = (Order.Status.PAID, Order.Status.PARTIALLY_REFUNDED, Order.Status.COMPLETED, Order.Status.ABANDONED)


class NotAllowed(DomainError):
    code = "not_allowed"
    http_status = 403
    default_message = "You are not allowed to do this."


def refundable_fen(payment: Payment) -> int:
    return refundable_fens([payment])[payment.pk]


def refundable_fens(payments: list[Payment]) -> dict[int, int]:
    """What is left to refund of each payment (fen, by payment id): its amount less the refunds that count
    (``Refund.COUNTING``), in one query."""
    counted = dict(
        Refund.objects.filter(payment__in=payments, status__in=Refund.COUNTING)
        .values_list("payment_id")
        .annotate(total=Sum("amount_fen"))
        .order_by()
    )
    return {payment.pk: payment.amount_fen - counted.get(payment.pk, 0) for payment in payments}


def rental_in_use(order: Order) -> bool:
    """The customer has used the rental: it has ended (completed or abandoned), or they opened its door themselves (for
    the pickup or to open again). Then only staff may refund. One rule for every channel and door driver:
    it reads the purpose ``lockers.services.door_open`` records with each command, never who the actor
    was, so the opening right after payment (``delivery``) never counts. Paid overtime was time used (and
    paying it opened the door): only staff refund it."""
    in_use = _in_use_without_doors(order)
    return door_opened_by_customer(reference=order.order_no) if in_use is None else in_use


def _in_use_without_doors(order: Order) -> bool | None:
    """``rental_in_use`` as far as the order row says; None when only its door's history can tell."""
    if order.kind == Order.Kind.LOCKER_OVERTIME:
        return True
    if order.kind != Order.Kind.LOCKER_RENTAL:
        return False
    if order.completed_at is not None or order.abandoned_at is not None:  # ended, or left for operations
        return True
    return None


def _status_refusal(order: Order) -> Conflict | None:
    if order.status in REFUNDABLE_ORDER:
        return None
    return Conflict(
        "Only a paid (or partially refunded) order can be refunded.",
        code="not_refundable",
        details={"status": order.status},
    )


def user_refund_refusal(order: Order, *, amount_fen: int | None = None) -> DomainError | None:
    """Why the customer may not ask for a refund of their ``order`` now (None: they may): the one rule the API
    (``refund_request`` from a user) and the customer pages ("Request a refund") apply. 409 ``not_refundable``
    (not paid, or no payment of its own to refund), 403 ``refund_needs_staff`` (``rental_in_use``: a used
    rental, an overtime order), 409 ``refund_exceeds_paid`` (nothing left to refund; ``details`` name the
    ``amount_fen`` asked for when the API asked)."""
    return user_refund_refusals([order], amount_fen=amount_fen)[order.pk]


def user_refund_refusals(orders: list[Order], *, amount_fen: int | None = None) -> dict[int, DomainError | None]:
    """``user_refund_refusal`` of each order, by order id, in at most three queries whatever their number (the
    customer's "My orders" page asks it of every order it lists)."""
    refusals: dict[int, DomainError | None] = {order.pk: _status_refusal(order) for order in orders}
    paid = [order for order in orders if refusals[order.pk] is None]
    in_use = {order.pk: _in_use_without_doors(order) for order in paid}
    opened = doors_opened_by_customer(references=[order.order_no for order in paid if in_use[order.pk] is None])
    for order in paid:
        if in_use[order.pk] or order.order_no in opened:
            refusals[order.pk] = NotAllowed(
                "This rental is in use: ask the staff for a refund.", code="refund_needs_staff"
            )
    paid = [order for order in paid if refusals[order.pk] is None]
    payments = _paying_payments(paid)
    left_fen = refundable_fens(list(payments.values()))
    for order in paid:
        payment = payments.get(order.pk)
        if payment is None:
            refusals[order.pk] = Conflict("This order has no payment to refund.", code="not_refundable")
        elif (left := left_fen[payment.pk]) <= 0:
            refusals[order.pk] = Conflict(
                "Nothing is left to refund.",
                code="refund_exceeds_paid",
                details={"refundable_fen": left, **({} if amount_fen is None else {"amount_fen": amount_fen})},
            )
    return refusals


def _paying_payments(orders: list[Order]) -> dict[int, Payment]:
    """The payment a refund of each order draws on, by order id: its newest succeeded payment that is not
    flagged (late or double payments are refunded by their own flow), in one query."""
    payments: dict[int, Payment] = {}
    for payment in Payment.objects.filter(order__in=orders, status=Payment.Status.SUCCEEDED, flag="").order_by("id"):
        payments[payment.order_id] = payment  # a newer one replaces an older one
    return payments


def _paying_payment(order: Order) -> Payment:
    payment = _paying_payments([order]).get(order.pk)
    if payment is None:
        raise Conflict("This order has no payment to refund.", code="not_refundable")
    return payment


@transaction.atomic
def refund_request(
    *,
    order_no: str,
    amount_fen: int | None,
    reason: str,
    requested_by=None,
    source: str | None = None,
    payment_no: str | None = None,
) -> Refund:
    """Ask for a refund (full when ``amount_fen`` is None). Users for their own orders; staff from
    admin; the system for late and double payments (``payment_no`` names which)."""
    source = source or Refund.Source.USER
    order = Order.objects.filter(order_no=order_no).first()
    if order is None or (source == Refund.Source.USER and order.user_id != getattr(requested_by, "pk", None)):
        raise NotFound("Order not found.", details={"order_no": order_no})
    if source == Refund.Source.STAFF and not requested_by.has_perm("refunds.request_refund"):
        raise NotAllowed("Requesting refunds needs the refunds.request_refund permission.")
    if source == Refund.Source.USER and (refusal := user_refund_refusal(order, amount_fen=amount_fen)) is not None:
        raise refusal  # the rule the customer pages offer "Request a refund" by
    if source == Refund.Source.STAFF and (refusal := _status_refusal(order)) is not None:
        raise refusal
    payment = Payment.objects.get(payment_no=payment_no, order=order) if payment_no else _paying_payment(order)
    actor = Actor.system("refunds") if requested_by is None else Actor.user(requested_by)
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        left = refundable_fen(payment)
        amount = left if amount_fen is None else amount_fen
        if amount <= 0 or amount > left:  # what is left depends on the order's refunds so far: 409
            raise Conflict(
                "The refund would exceed what was paid." if amount > 0 else "Nothing is left to refund.",
                code="refund_exceeds_paid",
                details={"refundable_fen": left, "amount_fen": amount},
            )
        refund = Refund.objects.create(
            refund_no=order_no_new("RF"),
            payment=payment,
            order=order,
            amount_fen=amount,
            reason=reason[:200],
            source=source,
            requested_by=requested_by,
        )
        RefundEvent.objects.create(
            refund=refund,
            action="request",
            to_status=refund.status,
            actor=str(actor),
            reason=reason[:200],
            data={"amount_fen": amount},
        )
        _hold_topup(refund, payment=payment, actor=actor)  # 402 insufficient_balance: nothing is written
    auto = source == Refund.Source.SYSTEM or (
        source == Refund.Source.USER and amount <= settings.REFUND_AUTO_APPROVE_MAX_FEN
    )
    if auto:
        refund = refund_approve(refund_id=refund.pk, approver=None, note="auto-approved")
    return refund


def _holds_topup(refund: Refund, payment: Payment) -> bool:
    """A refund of the payment that topped a wallet up (not a late or double one, whose money never
    reached the wallet): the money it sends back to the payer must leave the wallet."""
    return refund.order.kind == Order.Kind.WALLET_TOPUP and not payment.flag


def _hold_topup(refund: Refund, *, payment: Payment, actor: Actor) -> None:
    """Take a top-up's refund out of the wallet when it is asked for, so that it cannot be spent while the
    refund is on its way (raises ``InsufficientBalance``, 402, when it has been spent already)."""
    if _holds_topup(refund, payment):
        wallet_debit(
            user_id=refund.order.user_id,
            amount_fen=refund.amount_fen,
            type=WalletTransaction.Type.TOPUP_REFUND,
            reference=refund.refund_no,
            actor=actor,
        )


def _release_topup(refund: Refund, *, actor: Actor) -> None:
    """A top-up's refund that was rejected or failed: its money goes back into the wallet (once)."""
    if _holds_topup(refund, refund.payment):
        wallet_credit(
            user_id=refund.order.user_id,
            amount_fen=refund.amount_fen,
            type=WalletTransaction.Type.REFUND_UNDONE,
            reference=refund.refund_no,
            actor=actor,
        )


def _decide_checks(refund: Refund, approver, *, approving: bool) -> None:
    if approver is None:
        return  # the system (auto-approval)
    if not approver.has_perm("refunds.approve_refund"):
        raise NotAllowed("Approving refunds needs the refunds.approve_refund permission.")
    if approving and refund.requested_by_id == approver.pk:
        raise NotAllowed("The person who requested a refund cannot approve it.", code="maker_checker")


@transaction.atomic
def refund_approve(*, refund_id: int, approver, note: str = "") -> Refund:
    refund = Refund.objects.select_for_update().get(pk=refund_id)
    _decide_checks(refund, approver, approving=True)
    refund.approved_by = approver
    refund.decided_at = timezone.now()
    refund.decision_note = note[:200]
    actor = Actor.system("auto-approve") if approver is None else Actor.user(approver)
    transition(refund, to=Status.APPROVED, actor=actor, action="approve", reason=note)
    from refunds.tasks import refund_submit_task

    transaction.on_commit(lambda: refund_submit_task.delay(refund.pk), robust=True)
    return refund


@transaction.atomic
def refund_reject(*, refund_id: int, approver, note: str) -> Refund:
    refund = Refund.objects.select_for_update().get(pk=refund_id)
    _decide_checks(refund, approver, approving=False)
    refund.approved_by = approver
    refund.decided_at = timezone.now()
    refund.decision_note = note[:200]
    transition(refund, to=Status.REJECTED, actor=Actor.user(approver), action="reject", reason=note)
    _release_topup(refund, actor=Actor.user(approver))
    return refund


@transaction.atomic
def _refund_mark_processing(*, refund_id: int, now: datetime | None = None) -> Refund:
    refund = Refund.objects.select_for_update().get(pk=refund_id)
    if refund.status == Status.APPROVED:
        refund.submitted_at = now or timezone.now()
        transition(refund, to=Status.PROCESSING, actor=Actor.system("refunds"), action="submit")
    return refund


def refund_submit(*, refund_id: int, now: datetime | None = None) -> Refund:
    """Send an approved refund to its gateway (a wallet refund credits the wallet at once).

    Safe to run again: ``refund_no`` is the gateway's idempotency key, so a retry after a crash or
    a timeout returns the refund the gateway already has instead of paying twice. ``now``: the time of
    the job that submits (default: the clock), recorded as ``submitted_at``.
    """
    refund = _refund_mark_processing(refund_id=refund_id, now=now)
    if refund.status != Status.PROCESSING:
        return refund
    with log_context(refund_no=refund.refund_no, payment_no=refund.payment.payment_no):
        return _refund_send(refund, now=now)


def refund_resubmit(*, refund_id: int, actor: Actor, now: datetime | None = None, note: str = "") -> Refund:
    """Send a ``processing`` refund to its gateway again, with the same refund number: idempotent at every
    gateway (WeChat out_refund_no, Alipay out_request_no, Wallyt out_refund_no), so it never pays twice.
    Audited as a ``resubmit`` event (with ``actor`` and ``note``; ``data.gateway_unknown_since`` when the
    gateway had said it did not know the refund). Raises ``InvalidTransition`` for a refund in another state.
    """
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        if refund.status != Status.PROCESSING:
            raise InvalidTransition("refund", refund.status, "resubmitted")
        unknown = refund.gateway_unknown_since
        data = {"gateway_unknown_since": unknown.isoformat()} if unknown else {}
        event(refund, action="resubmit", actor=actor, reason=note[:200], data=data)
    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    with log_context(refund_no=refund.refund_no, payment_no=refund.payment.payment_no):
        return _refund_send(refund, now=now)


def refund_resend(*, refund_id: int, staff, note: str) -> Refund:
    """Finance sends a processing refund to its gateway again (the admin action; most useful for a refund the
    gateway does not know, which reconciliation also re-sends by itself after ``REFUND_RESEND_GRACE_SECONDS``).
    Needs ``refunds.resend_refund`` and a note; audited with the acting user. Same refund number: never paid
    twice. Raises ``NotAllowed``, ``ValidationFailed``, ``InvalidTransition``, ``GatewayUnavailable``."""
    if not staff.has_perm("refunds.resend_refund"):
        raise NotAllowed("Re-sending refunds needs the refunds.resend_refund permission.")
    if not note.strip():
        raise ValidationFailed("A note is required.", details={"note": ["Required."]})
    return refund_resubmit(refund_id=refund_id, actor=Actor.user(staff), note=note)


def _refund_send(refund: Refund, *, now: datetime | None = None) -> Refund:
    payment = refund.payment
    if payment.channel == Channel.WALLET:
        return _refund_to_wallet(refund_id=refund.pk)
    gateway = get_gateway(payment.gateway)
    request = RefundRequest(
        refund_no=refund.refund_no,
        payment_no=payment.payment_no,
        gateway_trade_no=payment.gateway_trade_no or None,
        refund_fen=refund.amount_fen,
        total_fen=payment.amount_fen,
        reason=refund.reason,
        by_gateway_trade_no=payment.out_trade_no is None,
    )
    try:
        answer = gateway.refund(request)
    except GatewayRejected as exc:
        return refund_mark_failed(
            refund_id=refund.pk,
            actor=Actor.gateway(gateway.name),
            reason=exc.message,
            data={"gateway_code": exc.gateway_code},
        )
    _apply_answer(answer, refund=refund, actor=Actor.gateway(gateway.name), now=now)
    return Refund.objects.get(pk=refund.pk)


def _apply_answer(answer: RefundStatus, *, refund: Refund, actor: Actor, now: datetime | None = None) -> None:
    """Apply the gateway's answer about ``refund`` (the one we asked about); a refused one is audited."""
    try:
        refund_apply_gateway_status(status=answer, actor=actor, refund_no=refund.refund_no, now=now)
    except FieldMismatch as exc:
        logger.warning("refund %s: gateway answer refused: %s", refund.refund_no, exc.reason)
        event(
            Refund.objects.get(pk=refund.pk), action="refused", actor=actor, reason=exc.message[:200], data=exc.details
        )
        raise


@transaction.atomic
def _refund_to_wallet(*, refund_id: int) -> Refund:
    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    payment = Payment.objects.select_for_update().get(pk=refund.payment_id)
    refund = Refund.objects.select_for_update().get(pk=refund_id)
    if refund.status != Status.PROCESSING:
        return refund
    actor = Actor.system("refunds")
    wallet_credit(
        user_id=refund.order.user_id,
        amount_fen=refund.amount_fen,
        type=WalletTransaction.Type.REFUND,
        reference=refund.refund_no,
        actor=actor,
    )
    _refund_succeeded(refund, payment=payment, actor=actor, at=timezone.now())
    return refund


@transaction.atomic
def refund_mark_failed(*, refund_id: int, actor: Actor, reason: str, data: dict | None = None) -> Refund:
    refund = Refund.objects.select_for_update().get(pk=refund_id)
    if refund.status != Status.FAILED:
        transition(refund, to=Status.FAILED, actor=actor, action="fail", reason=reason, data=data)
        _release_topup(refund, actor=actor)
    return refund


def refund_apply_gateway_status(
    *, status: RefundStatus, actor: Actor, refund_no: str | None = None, now: datetime | None = None
) -> Payment:
    """The one way a gateway's word (notification, refund answer or query) changes a refund.

    ``refund_no``: the refund we asked about (an answer or a query must be about it); a notification
    names its own. Every field the gateway's ``CHECKS`` table names (the refund, gateway, payment, refund
    amount, the trade's total, the cumulative refunded amount, merchant id, currency) is compared with
    our refund and its payment, under the payment's row lock, before anything changes (raises
    ``FieldMismatch``). A word less final than the one recorded (a late PROCESSING after SUCCESS, a
    CLOSED after SUCCESS) changes nothing but the history. ``now``: the asking job's time (default: the
    clock); ``last_synced_at`` moves to it, never back. The gateway knows the refund now:
    ``gateway_unknown_since`` is cleared.
    """
    refund_no = refund_no or status.refund_no
    found = Refund.objects.filter(refund_no=refund_no).first()
    if found is None:
        raise NotFound("Refund not found.", details={"refund_no": refund_no})
    with log_context(refund_no=refund_no), transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=found.payment_id)
        refund = Refund.objects.select_for_update().get(pk=found.pk)
        _refund_checked(status, refund=refund, payment=payment)
        refund.gateway_refund_id = status.gateway_refund_id or refund.gateway_refund_id
        if _recordable(status, refund):
            refund.gateway_state = status.gateway_state or status.state
        refund.last_synced_at = synced_at(refund.last_synced_at, now or timezone.now())
        refund.gateway_unknown_since = None
        refund.gateway_answers = [*refund.gateway_answers[-9:], {"state": status.state, **_plain(status.raw)}]
        if status.state == RefundState.SUCCEEDED and refund.status in (Status.PROCESSING, Status.ABNORMAL):
            _refund_succeeded(refund, payment=payment, actor=actor, at=status.succeeded_at or timezone.now())
        elif status.state == RefundState.FAILED and refund.status == Status.PROCESSING:
            transition(refund, to=Status.FAILED, actor=actor, action="fail", reason=status.gateway_state)
            _release_topup(refund, actor=actor)
        elif status.state == RefundState.ABNORMAL and refund.status == Status.PROCESSING:
            transition(refund, to=Status.ABNORMAL, actor=actor, action="abnormal", reason=status.gateway_state)
        refund.save()
        return payment


# How final a word is (DESIGN rule 5): the recorded gateway word changes only to a more final one, or to
# another word of the state the refund is in (a late PROCESSING, or a CLOSED after SUCCESS, is not recorded).
_REFUND_RANK = {RefundState.PROCESSING: 0, RefundState.ABNORMAL: 1, RefundState.FAILED: 2, RefundState.SUCCEEDED: 2}
_REFUND_STATE = {
    Status.ABNORMAL: RefundState.ABNORMAL,
    Status.FAILED: RefundState.FAILED,
    Status.SUCCEEDED: RefundState.SUCCEEDED,
}


def _recordable(status: RefundStatus, refund: Refund) -> bool:
    ours = _REFUND_STATE.get(refund.status, RefundState.PROCESSING)
    return status.state == ours or _REFUND_RANK[status.state] > _REFUND_RANK[ours]


def _refund_checked(status: RefundStatus, *, refund: Refund, payment: Payment) -> None:
    """Refuse (``FieldMismatch``) a word about ``refund`` unless every field of its gateway's ``CHECKS`` is
    ours. ``status.gateway`` is the adapter that read it. Runs under the payment's row lock."""
    gateway = get_gateway(status.gateway)
    sent = (Status.PROCESSING, Status.ABNORMAL, Status.SUCCEEDED)  # the refunds the gateway may have executed
    others = payment.refunds.exclude(pk=refund.pk).filter(status__in=sent).values_list("amount_fen", flat=True)
    totals = cumulative_refund_totals(this_fen=refund.amount_fen, others_fen=list(others))
    expected = refund_expectations(
        refund_no=refund.refund_no,
        payment_gateway=payment.gateway,
        payment_no=payment.out_trade_no,
        payment_amount_fen=payment.amount_fen,
        refund_fen=refund.amount_fen,
        refunded_totals=totals,
        identity=gateway.identity(),
        gateway_trade_no=payment.gateway_trade_no,
    )
    check_refund(gateway.checks, status, expected)
    if payment.out_trade_no is None and not status.gateway_trade_no:  # a trade the gateway numbered: its id or nothing
        trade = next(c for c in gateway.checks.refund if c.field == "gateway_trade_no")
        raise FieldMismatch(trade, gateway=gateway.name, message=Message(status.source), got=None)
    if status.state == RefundState.SUCCEEDED and status.amount_fen is None and status.refunded_total_fen is None:
        amount = next(c for c in gateway.checks.refund if c.field == "amount_fen")  # money moves on a checked amount
        raise FieldMismatch(amount, gateway=gateway.name, message=Message(status.source), got=None)


def _plain(raw: dict) -> dict:
    """The gateway's answer as JSON (nested objects such as WeChat's ``amount`` kept; other values as text)."""
    return json.loads(json.dumps(raw, default=str))


def _refund_succeeded(refund: Refund, *, payment: Payment, actor: Actor, at: datetime, reason: str = "") -> None:
    refund.succeeded_at = at
    transition(refund, to=Status.SUCCEEDED, actor=actor, action="succeed", reason=reason)
    payment_record_refund(payment=payment, refund_no=refund.refund_no, amount_fen=refund.amount_fen, actor=actor)
    if not payment.flag:  # the payment that paid the order: the order follows
        order_mark_refunded(
            order_id=payment.order_id,
            refunded_fen=payment.refunded_fen,
            paid_fen=payment.amount_fen,
            actor=actor,
            reason=refund.reason,
        )


def refund_sync(*, refund_id: int, actor: Actor, now: datetime | None = None) -> Refund:
    """Ask the gateway how a processing (or abnormal) refund stands and apply the answer. A gateway that does
    not know the refund (``RefundNotFound``) is recorded (``refund_mark_gateway_unknown``), not raised.
    ``now``: the asking job's time (default: the clock)."""
    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    if refund.status not in (Status.PROCESSING, Status.ABNORMAL) or refund.payment.channel == Channel.WALLET:
        return refund
    gateway = get_gateway(refund.payment.gateway)
    try:
        answer = gateway.query_refund(refund.refund_no, payment_no=refund.payment.payment_no)
    except RefundNotFound as exc:
        return refund_mark_gateway_unknown(refund_id=refund_id, actor=actor, now=now, note=exc.message)
    _apply_answer(answer, refund=refund, actor=actor, now=now)
    return Refund.objects.get(pk=refund_id)


@transaction.atomic
def refund_mark_gateway_unknown(*, refund_id: int, actor: Actor, now: datetime | None = None, note: str = "") -> Refund:
    """The gateway says it does not know this processing refund (it never reached it): from the first time,
    ``gateway_unknown_since`` (audited once, as ``gateway_unknown``) shows it to finance, and once it is older
    than ``REFUND_RESEND_GRACE_SECONDS`` reconciliation sends the refund again. The status does not change."""
    now = now or timezone.now()
    refund = Refund.objects.select_for_update().get(pk=refund_id)
    if refund.status != Status.PROCESSING:
        return refund
    refund.last_synced_at = synced_at(refund.last_synced_at, now)
    fields = ["last_synced_at", "updated_at"]
    if refund.gateway_unknown_since is None:
        refund.gateway_unknown_since = now
        fields.append("gateway_unknown_since")
        event(refund, action="gateway_unknown", actor=actor, reason=note[:200])
    refund.save(update_fields=fields)
    return refund


def refund_needs_resend(refund: Refund, *, now: datetime) -> bool:
    """A processing refund its gateway has not known for longer than ``REFUND_RESEND_GRACE_SECONDS``."""
    grace = timedelta(seconds=settings.REFUND_RESEND_GRACE_SECONDS)
    return (
        refund.status == Status.PROCESSING
        and refund.gateway_unknown_since is not None
        and refund.gateway_unknown_since <= now - grace
    )


def refund_resolve_abnormal(*, refund_id: int, staff, action: str, note: str) -> Refund:
    """An ABNORMAL refund: ``retry`` sends it again to the original route; ``offline`` records that
    finance paid the customer another way. Both need a note and the resolve permission."""
    if not staff.has_perm("refunds.resolve_abnormal_refund"):
        raise NotAllowed("Resolving abnormal refunds needs the refunds.resolve_abnormal_refund permission.")
    if not note.strip():
        raise ValidationFailed("A note is required.", details={"note": ["Required."]})
    if action not in ("retry", "offline"):
        raise ValidationFailed("Unknown action.", details={"action": action})
    actor = Actor.user(staff)
    with transaction.atomic():
        refund = Refund.objects.select_related("payment").get(pk=refund_id)
        payment = Payment.objects.select_for_update().get(pk=refund.payment_id)
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        if refund.status != Status.ABNORMAL:
            raise InvalidTransition("refund", refund.status, "resolved")
        if action == "offline":
            _refund_succeeded(refund, payment=payment, actor=actor, at=timezone.now(), reason=f"paid offline: {note}")
            return refund
        transition(refund, to=Status.PROCESSING, actor=actor, action="retry", reason=note)
    from refunds.tasks import refund_submit_task

    transaction.on_commit(lambda: refund_submit_task.delay(refund.pk), robust=True)
    return refund


BANK_TYPE_RE = re.compile(r"[A-Z0-9_]{1,16}")
BANK_ACCOUNT_RE = re.compile(r"\d{8,32}")


def refund_apply_abnormal(
    *,
    refund_id: int,
    staff,
    destination: str,
    note: str,
    bank_type: str = "",
    bank_account: str = "",
    real_name: str = "",
) -> Refund:
    """Finance applies for an ``abnormal`` WeChat refund to be paid to a bank card (PROTOCOLS F.2): the user's
    (``USER_BANK_CARD``: ``bank_type``, ``bank_account`` and ``real_name`` needed) or the merchant's
    (``MERCHANT_BANK_CARD``: the merchant then pays the customer itself).

    Needs ``refunds.resolve_abnormal_refund`` and a note. The refund goes back to ``processing`` (audited as
    ``apply_abnormal`` with the acting user; the account is kept as its last four digits and the name as its
    first character, never in full, never logged), then the gateway is called outside any lock; its answer is
    applied like any refund answer (``REFUND.SUCCESS`` settles it later). The gateway said no
    (``GatewayRejected``): the refund is ``abnormal`` again and the error raised. Unreachable
    (``GatewayUnavailable``, raised): it stays ``processing`` and reconciliation asks WeChat (an application
    that never arrived shows ``abnormal`` again). Raises ``NotAllowed``, ``ValidationFailed``,
    ``InvalidTransition``.
    """
    if not staff.has_perm("refunds.resolve_abnormal_refund"):
        raise NotAllowed("Resolving abnormal refunds needs the refunds.resolve_abnormal_refund permission.")
    request = _abnormal_request_checked(
        destination=destination, note=note, bank_type=bank_type, bank_account=bank_account, real_name=real_name
    )
    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    gateway = get_gateway(refund.payment.gateway) if refund.payment.channel != Channel.WALLET else None
    if not hasattr(gateway, "apply_abnormal_refund"):
        raise ValidationFailed(
            "Only WeChat Pay pays abnormal refunds out to a bank card.", code="abnormal_refund_unsupported"
        )
    if not refund.gateway_refund_id and refund.status == Status.ABNORMAL:
        refund = refund_sync(refund_id=refund_id, actor=Actor.user(staff))  # WeChat's refund_id is the call's path
    actor = Actor.user(staff)
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        if refund.status != Status.ABNORMAL:
            raise InvalidTransition("refund", refund.status, "applied for an abnormal refund")
        if not refund.gateway_refund_id:
            raise Conflict("WeChat's refund id is not known yet: ask the gateway first.", code="refund_id_unknown")
        transition(
            refund, to=Status.PROCESSING, actor=actor, action="apply_abnormal", reason=note, data=_masked(request)
        )
    request = replace(request, refund_no=refund.refund_no, gateway_refund_id=refund.gateway_refund_id)
    with log_context(refund_no=refund.refund_no):
        try:
            answer = cast(AbnormalRefunds, gateway).apply_abnormal_refund(request)
        except GatewayRejected as exc:
            with transaction.atomic():
                refund = Refund.objects.select_for_update().get(pk=refund_id)
                if refund.status == Status.PROCESSING:
                    transition(
                        refund,
                        to=Status.ABNORMAL,
                        actor=Actor.gateway(gateway.name),
                        action="apply_abnormal_refused",
                        reason=exc.message,
                        data={"gateway_code": exc.gateway_code},
                    )
            raise
        refund_apply_gateway_status(status=answer, actor=Actor.gateway(gateway.name))
    return Refund.objects.get(pk=refund_id)


def _abnormal_request_checked(
    *, destination: str, note: str, bank_type: str, bank_account: str, real_name: str
) -> AbnormalRefundRequest:
    """The finance input, checked before anything is written or sent (the values are never echoed back)."""
    if not note.strip():
        raise ValidationFailed("A note is required.", details={"note": ["Required."]})
    try:
        where = AbnormalRefundDestination(destination)
    except ValueError:
        raise ValidationFailed("Unknown destination.", details={"destination": ["Not a choice."]}) from None
    if where is AbnormalRefundDestination.MERCHANT_BANK_CARD:
        return AbnormalRefundRequest(refund_no="", gateway_refund_id="", destination=where)
    bank_type, bank_account, real_name = (
        bank_type.strip().upper(),
        re.sub(r"[\s-]", "", bank_account),
        real_name.strip(),
    )
    errors = {}
    if not BANK_TYPE_RE.fullmatch(bank_type):
        errors["bank_type"] = ["The bank's code (e.g. ICBC_DEBIT), at most 16 characters."]
    if not BANK_ACCOUNT_RE.fullmatch(bank_account):
        errors["bank_account"] = ["A debit card number: 8 to 32 digits."]
    if not 0 < len(real_name) <= 100:
        errors["real_name"] = ["The card holder's name."]
    if errors:
        raise ValidationFailed("A refund to the user's bank card needs the bank and the card holder.", details=errors)
    return AbnormalRefundRequest(
        refund_no="",
        gateway_refund_id="",
        destination=where,
        bank_type=bank_type,
        bank_account=bank_account,
        real_name=real_name,
    )


def _masked(request: AbnormalRefundRequest) -> dict[str, str]:
    """What the audit trail keeps of an application: never the account or the name in full."""
    data = {"destination": str(request.destination)}
    if request.bank_account:
        data.update(
            bank_type=request.bank_type,
            bank_account=f"****{request.bank_account[-4:]}",
            real_name=request.real_name[0] + "*" * (len(request.real_name) - 1),
        )
    return data
