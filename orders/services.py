"""Order writes: creation with server-side pricing, and one function per state transition.

The rental's life: paid (the door opens for the customer to put their things in) -> the customer
opens it for pickup within the paid time plus the pickup-code grace, which completes the rental,
closes the pickup code and frees the compartment -> for ``RENTAL_REOPEN`` after that the customer
may open again (a forgotten item). Past the pickup code's validity opening the door asks for
overtime (402 ``overtime_due``, ``orders.overtime``): paying it opens the door and completes the
rental. Overdue by more than ``ABANDONED_AFTER``, the rental is abandoned (``orders.abandoned``):
operations open and clear the compartment, and the overtime is recorded as owed.

Lock order everywhere: payment, then order, then compartment / wallet.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.audit import Actor
from core.errors import Conflict, NotFound, ValidationFailed
from core.transitions import event, transition
from lockers import services as lockers
from lockers.models import Compartment, DoorPurpose
from lockers.pricing import price_quote
from lockers.selectors import pickup_codes_active
from orders.hooks import user_cancel_hooks
from orders.models import Order, OrderEvent
from orders.selectors import reopen_refusal
from wallets.models import WalletTransaction
from wallets.services import wallet_credit

Status = Order.Status


def order_no_new(prefix: str = "LK", *, now: datetime | None = None) -> str:
    """Our order (payment, refund) number: prefix, the local time (``settings.TIME_ZONE``, the zone
    people read everywhere) as ``YYYYmmddHHMMSS``, 10 random hex digits. Time-ordered, unguessable,
    valid as a gateway out_trade_no (<= 32, [0-9A-Z])."""
    return f"{prefix}{timezone.localtime(now):%Y%m%d%H%M%S}{secrets.token_hex(5).upper()}"


def _locked(order_id: int) -> Order:
    return Order.objects.select_for_update().get(pk=order_id)


def order_transition(
    order: Order,
    *,
    to: str,
    actor: Actor,
    action: str,
    reason: str = "",
    data: dict | None = None,
    fields: tuple[str, ...] | None = None,
):
    """The one way an order changes status (``core.transitions.transition``): checked against
    ``Order.TRANSITIONS``, saved, audited (an event). ``order`` must be locked (``select_for_update``) by the
    caller's transaction. ``fields``: the only other fields the caller changed; then the row and its event are
    written in one statement. Raises ``InvalidTransition``."""
    transition(order, to=to, actor=actor, action=action, reason=reason, data=data, one_statement=fields)


def order_event(order: Order, *, action: str, actor: Actor, reason: str = "", data: dict | None = None) -> OrderEvent:
    """An audited step that leaves the order's status as it is (re-priced, opened again, cleared...)."""
    return event(order, action=action, actor=actor, reason=reason, data=data)


@transaction.atomic
def order_create_rental(*, user, compartment_id: int, hours: int, now: datetime | None = None) -> Order:
    """Price on the server and reserve the compartment in the same transaction."""
    now = now or timezone.now()
    compartment = Compartment.objects.filter(pk=compartment_id).first()
    if compartment is None:
        raise NotFound("Compartment not found.", details={"compartment_id": compartment_id})
    quote = price_quote(size=compartment.size, hours=hours, max_hours=settings.ORDER_MAX_HOURS)
    order_no = order_no_new()
    actor = Actor.user(user)
    lockers.compartment_reserve(compartment_id=compartment.pk, reference=order_no, actor=actor)
    order = Order.objects.create(
        order_no=order_no,
        user=user,
        kind=Order.Kind.LOCKER_RENTAL,
        amount_fen=quote.amount_fen,
        compartment=compartment,
        hours=hours,
        pricing=quote.as_dict(),
        expires_at=now + settings.ORDER_EXPIRY,
    )
    OrderEvent.objects.create(order=order, action="create", to_status=order.status, actor=str(actor))
    return order


@transaction.atomic
def order_create_topup(*, user, amount_fen: int, now: datetime | None = None) -> Order:
    low, high = settings.WALLET_TOPUP_MIN_FEN, settings.WALLET_TOPUP_MAX_FEN
    if not low <= amount_fen <= high:
        raise ValidationFailed(f"amount_fen must be between {low} and {high}.", details={"amount_fen": amount_fen})
    now = now or timezone.now()
    order = Order.objects.create(
        order_no=order_no_new("TU"),
        user=user,
        kind=Order.Kind.WALLET_TOPUP,
        amount_fen=amount_fen,
        expires_at=now + settings.ORDER_EXPIRY,
    )
    OrderEvent.objects.create(order=order, action="create", to_status=order.status, actor=str(Actor.user(user)))
    return order


def _release_compartment(order: Order, *, actor: Actor, reason: str) -> None:
    if order.compartment_id:
        lockers.compartment_release(
            compartment_id=order.compartment_id, reference=order.order_no, actor=actor, reason=reason
        )


@transaction.atomic
def order_cancel(*, order_id: int, actor: Actor, reason: str, locked_order: Order | None = None) -> Order:
    """pending_payment -> cancelled (user cancel, expiry, gateway closed); frees the compartment.

    ``locked_order``: this order, already locked (``select_for_update``) by the caller in this transaction.
    """
    if locked_order is not None and locked_order.pk != order_id:
        raise ValueError(f"locked_order is order {locked_order.pk}, not {order_id}")
    order = locked_order or _locked(order_id)
    if order.status == Status.CANCELLED:
        return order
    order_transition(order, to=Status.CANCELLED, actor=actor, action="cancel", reason=reason)
    _release_compartment(order, actor=actor, reason=reason)
    return order


def order_cancel_by_user(*, order_id: int, actor: Actor, reason: str) -> Order:
    """The owner cancels an unpaid order. The hooks registered with ``orders.hooks.on_user_cancel`` run
    first, outside any transaction (``payments`` closes the open payments at the gateway: one that turns
    out to be paid wins, the order is then paid and this answers 409 ``invalid_transition``). A second
    cancel is harmless. Raises ``Conflict``; what a hook raises (``GatewayUnavailable``...) passes."""
    for hook in user_cancel_hooks():
        hook(order=Order.objects.get(pk=order_id), actor=actor, reason=reason)
    order = Order.objects.get(pk=order_id)
    if order.status not in (Status.PENDING_PAYMENT, Status.CANCELLED):
        raise Conflict(
            "Only an unpaid order can be cancelled.", code="invalid_transition", details={"status": order.status}
        )
    return order_cancel(order_id=order_id, actor=actor, reason=reason)


def order_mark_paid(
    *,
    order_id: int,
    paid_at: datetime,
    actor: Actor,
    reference: str = "",
    locked_order: Order | None = None,
) -> Order:
    """pending_payment -> paid, and fulfil: occupy + pickup code + the door opening for delivery (recorded
    here, sent to the driver after commit), or credit the wallet.

    ``locked_order``: this order, already locked (``select_for_update``) by the caller's transition in its
    transaction (lock order: payment, then order), which a failure here rolls back as a whole: it is not
    locked again and no savepoint is opened. Without it the order is locked here, in a transaction (a
    savepoint when nested) of its own.
    """
    if locked_order is None:
        with transaction.atomic():
            return _mark_paid(_locked(order_id), paid_at=paid_at, actor=actor, reference=reference)
    if locked_order.pk != order_id:
        raise ValueError(f"locked_order is order {locked_order.pk}, not {order_id}")
    if not transaction.get_connection().in_atomic_block:
        raise transaction.TransactionManagementError("locked_order needs the transaction that locked it")
    return _mark_paid(locked_order, paid_at=paid_at, actor=actor, reference=reference)


def order_start_after_use(
    *, order_id: int, started_at: datetime, pickup_until: datetime, actor: Actor, reference: str, locked_order: Order
) -> Order:
    """pending_payment -> paid for a rental paid after use (the customer confirmed a WeChat Pay Score service
    order ``reference``): fulfilled like a paid rental (``order_mark_paid``), but its pickup code stays valid
    until ``pickup_until`` (as long as the service order can bill); the amount is settled at pickup.
    In the caller's transaction, ``locked_order`` locked by it (lock order: service order, then order)."""
    order = order_mark_paid(
        order_id=order_id, paid_at=started_at, actor=actor, reference=reference, locked_order=locked_order
    )
    lockers.pickup_code_extend(reference=order.order_no, valid_until=pickup_until, actor=actor, reason="pay after use")
    return order


def bill_after_use(order: Order) -> None:
    """A rental paid after use is billed for the time used once it completes or is abandoned: the payments
    app's task, sent by name after commit (payments imports orders, not the other way); reconciliation
    heals a lost send."""
    if order.service_orders.filter(status="confirmed").exists():
        task = current_app.tasks["payments.payscore_bill_order"]
        transaction.on_commit(lambda: task.delay(order.pk), robust=True)


def _mark_paid(order: Order, *, paid_at: datetime, actor: Actor, reference: str) -> Order:
    if order.status == Status.PAID:
        return order
    order.paid_at = paid_at
    if order.kind == Order.Kind.LOCKER_RENTAL:
        order.rental_ends_at = paid_at + timedelta(hours=order.hours)
    order_transition(
        order,
        to=Status.PAID,
        actor=actor,
        action="paid",
        data={"payment": reference},
        fields=("paid_at", "rental_ends_at"),
    )
    if order.kind == Order.Kind.LOCKER_OVERTIME:
        from orders.overtime import overtime_fulfil  # it builds on this module

        overtime_fulfil(order, actor=actor)
    elif order.kind == Order.Kind.WALLET_TOPUP:
        wallet_credit(
            user_id=order.user_id,
            amount_fen=order.amount_fen,
            type=WalletTransaction.Type.TOPUP,
            reference=order.order_no,
            actor=actor,
        )
    else:
        lockers.compartment_occupy(compartment_id=order.compartment_id, reference=order.order_no, actor=actor)
        lockers.pickup_code_issue(
            compartment_id=order.compartment_id,
            reference=order.order_no,
            actor=actor,
            valid_until=order.rental_ends_at + settings.PICKUP_CODE_GRACE,
        )
        # the customer puts their things in: recorded now, sent to the driver after commit; not a use
        lockers.door_open(
            compartment_id=order.compartment_id, reference=order.order_no, actor=actor, purpose=DoorPurpose.DELIVERY
        )
    return order


def order_complete(
    *,
    order_id: int,
    actor: Actor,
    reason: str = "picked up",
    now: datetime | None = None,
    data: dict | None = None,
    locked_order: Order | None = None,
) -> Order:
    """paid|partially_refunded -> completed: the rental is over. The pickup code is closed (used) and the
    compartment is free again, in the same transaction. ``now`` (default: the clock) is ``completed_at``,
    where the ``RENTAL_REOPEN`` window starts. ``data`` goes on the order event.

    ``locked_order``: this order, already locked (``select_for_update``) by the caller in this transaction.
    Raises ``InvalidTransition`` (409) from any other state.
    """
    if locked_order is not None and locked_order.pk != order_id:
        raise ValueError(f"locked_order is order {locked_order.pk}, not {order_id}")
    with transaction.atomic():
        order = locked_order or _locked(order_id)
        order.completed_at = now or timezone.now()
        order_transition(order, to=Status.COMPLETED, actor=actor, action="complete", reason=reason, data=data)
        lockers.pickup_code_use(reference=order.order_no, actor=actor, reason=reason)
        _release_compartment(order, actor=actor, reason=reason)
        bill_after_use(order)
    return order


@transaction.atomic
def order_mark_refunded(
    *, order_id: int, refunded_fen: int, actor: Actor, reason: str = "", paid_fen: int | None = None
) -> Order:
    """-> partially_refunded or refunded, from the paying payment's cumulative refunded amount (fen) against
    what it paid (``paid_fen``; default the order's amount: a rental paid after use paid what its service
    order billed, which may differ from the amount booked)."""
    order = _locked(order_id)
    paid_fen = order.amount_fen if paid_fen is None else paid_fen
    if not 0 < refunded_fen <= paid_fen:
        raise ValidationFailed("refunded amount out of range.", details={"refunded_fen": refunded_fen})
    full = refunded_fen == paid_fen
    to = Status.REFUNDED if full else Status.PARTIALLY_REFUNDED
    order_transition(order, to=to, actor=actor, action="refund", reason=reason, data={"refunded_fen": refunded_fen})
    if full:
        lockers.pickup_code_cancel(reference=order.order_no, actor=actor, reason="refunded")
        compartment = order.compartment
        if compartment and compartment.status == Compartment.Status.RESERVED:
            _release_compartment(order, actor=actor, reason="refunded")
    return order


def order_open_door(*, order_no: str, user, now: datetime | None = None) -> str:
    """The renter asks to open the door of their rental; returns what the opening is for (``DoorPurpose``).

    - Paid and the pickup code still valid (``now`` <= its ``valid_until``: the paid time plus
      ``PICKUP_CODE_GRACE``): the pickup. The door-open command is recorded, the rental completes
      (``completed_at = now``), the pickup code is used and the compartment freed, in one transaction.
    - Paid and past the pickup code's validity: 402 ``overtime_due`` (``orders.overtime.OvertimeDue``), its
      details naming the overtime order to pay (created or re-priced, committed) and its amount in fen.
    - Completed less than ``RENTAL_REOPEN`` ago: open again, if nobody has taken the compartment since
      (an ``open_again`` order event; the order stays as it is).

    Errors (409 unless said): 404 ``not_found`` (not this user's rental), ``order_not_paid``,
    ``rental_abandoned`` (operations cleared or will clear it), ``rental_completed`` (after the open-again
    window), ``compartment_taken``, ``cabinet_offline``, ``no_price_plan``.
    """
    now = now or timezone.now()
    with transaction.atomic():
        purpose, rental_id = _open_door(order_no=order_no, user=user, now=now)
    if purpose:
        return purpose
    from orders.overtime import OvertimeDue, overtime_order_for_rental  # it builds on this module

    # outside the rental's lock: the overtime order is locked before its rental (as when it is paid)
    overtime = overtime_order_for_rental(rental_id=rental_id, actor=Actor.user(user), now=now)
    raise OvertimeDue(overtime)


def _open_door(*, order_no: str, user, now: datetime) -> tuple[str, int]:
    """(purpose, rental id) of an opening done here; ("", rental id) when overtime is due."""
    order = Order.objects.select_for_update().filter(order_no=order_no, user=user).first()
    if order is None:
        raise NotFound("Order not found.")
    actor = Actor.user(user)
    if order.kind == Order.Kind.LOCKER_RENTAL and order.completed_at is not None:
        return _open_again(order, actor=actor, now=now), order.pk
    if order.kind == Order.Kind.LOCKER_RENTAL and order.abandoned_at is not None:
        raise Conflict(
            "This rental was left too long: the staff have cleared or will clear the compartment. Ask them.",
            code="rental_abandoned",
            details={"abandoned_at": timezone.localtime(order.abandoned_at).isoformat()},
        )
    if order.status not in (Status.PAID, Status.PARTIALLY_REFUNDED) or order.kind != Order.Kind.LOCKER_RENTAL:
        raise Conflict("Only a paid rental can open its door.", code="order_not_paid", details={"status": order.status})
    code = pickup_codes_active(references=[order.order_no]).get(order.order_no)
    if code is None:
        raise Conflict("This rental has no valid pickup code.", code="order_not_paid", details={"status": order.status})
    from orders.overtime import overtime_asked  # it builds on this module

    if overtime_asked(order, pickup_until=code.valid_until, now=now):
        return "", order.pk  # paid up front: the overtime is an order to pay first
    command = lockers.door_open(
        compartment_id=order.compartment_id, reference=order.order_no, actor=actor, purpose=DoorPurpose.PICKUP
    )
    data = {"door_command": command.pk}
    order_complete(order_id=order.pk, actor=actor, reason="picked up", now=now, data=data, locked_order=order)
    return DoorPurpose.PICKUP, order.pk


def _open_again(order: Order, *, actor: Actor, now: datetime) -> str:
    refusal = reopen_refusal(order, now=now)  # the rule the pages offer "Open again" by
    if refusal is not None:
        raise refusal
    command = lockers.door_open(
        compartment_id=order.compartment_id, reference=order.order_no, actor=actor, purpose=DoorPurpose.REOPEN
    )
    order_event(order, action="open_again", actor=actor, data={"door_command": command.pk})
    return DoorPurpose.REOPEN
