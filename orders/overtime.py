"""Overtime at pickup: the order a customer pays for time past a rental's paid end.

A rental's door opens for the pickup until its pickup code's validity (the paid end plus
``PICKUP_CODE_GRACE``). Later, asking to open answers 402 ``overtime_due`` with an overtime order
(``Order.Kind.LOCKER_OVERTIME``, ``parent`` = the rental, its compartment and billed hours), priced here by
the server only (``lockers.pricing.overtime_since``: every started hour since the paid end, a daily cap per
price plan; the rule a Pay Score rental's final amount uses too, ``lockers.pricing.price_after_use``). It is
paid like any order, through ``payments.services`` (every channel, the wallet too), so the trust boundary,
healing and refunds apply unchanged. Once paid (``overtime_fulfil``, inside the transaction that marks it
paid) the rental's paid end moves to the end of the hours paid for, the door-open command for the pickup is
recorded (sent after commit) and the rental completes.

Pricing rule (asking again): an unpaid overtime order covers the started hours up to ``covers_until``
(``pricing["covers_until"]``). Asked again before then, it is returned unchanged. Asked after it (or after the
order expired) and no payment of it is open, it is re-priced in place (an order event ``reprice`` with both
amounts): the customer pays for the hours they actually used. With a payment open, it is never re-priced: the
gateway has that amount, and paying it opens the door. One unpaid overtime order per rental (a partial unique
constraint), so it is never charged twice.

Lock order: overtime order, then rental, then compartment (the same as a payment succeeding: payment, then the
overtime order, then its rental).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.audit import Actor
from core.errors import Conflict, DomainError
from core.money import format_yuan
from lockers import services as lockers
from lockers.models import Compartment, DoorPurpose
from lockers.pricing import HOUR_SECONDS, overtime_since
from orders.models import Order, OrderEvent
from orders.services import order_complete, order_event, order_no_new

Status = Order.Status
RUNNING = (Status.PAID, Status.PARTIALLY_REFUNDED)


class OvertimeDue(DomainError):
    """402: the paid time and its grace are over; ``details`` name the overtime order to pay and its amount."""

    code = "overtime_due"
    http_status = 402

    def __init__(self, overtime: Order):
        pricing = overtime.pricing
        super().__init__(
            f"The paid time is over: pay the overtime of {format_yuan(overtime.amount_fen)} to open the door.",
            details={
                "order_no": overtime.order_no,
                "amount_fen": overtime.amount_fen,
                "billed_hours": overtime.hours,
                "overdue_seconds": pricing.get("overdue_seconds"),
                "rental_ends_at": pricing.get("rental_ends_at"),
                "covers_until": pricing.get("covers_until"),
                "expires_at": overtime.expires_at.isoformat(),
            },
        )


class OvertimeCollection(models.TextChoices):
    """How owed overtime (an abandoned rental's) is collected."""

    CUSTOMER = "customer", "the customer pays the overtime order; finance sees it as owed until then"
    PAY_SCORE = "pay_score", "completed with the rental's WeChat Pay Score service order (issue 15 part 4)"


# a rental with a service order in one of these (payments.ServiceOrder.Status) is billed by it for the time used
PAY_SCORE_BILLING = ("confirmed", "completed", "paid")


def overtime_collection(rental: Order) -> OvertimeCollection:
    """How the overtime of ``rental`` is collected. A rental paid up front leaves it to the customer (an
    overtime order; finance sees it unpaid). A rental paid after use (a WeChat Pay Score service order that
    bills or billed it) is never asked for an overtime order: its service order is completed with the whole
    time used (``lockers.pricing.price_after_use``, capped by the risk fund), so charging overtime apart
    would charge those hours twice."""
    if rental.service_orders.filter(status__in=PAY_SCORE_BILLING).exists():
        return OvertimeCollection.PAY_SCORE
    return OvertimeCollection.CUSTOMER


def overtime_asked(rental: Order, *, pickup_until: datetime, now: datetime) -> bool:
    """Whether asking to open the door of the running ``rental`` at ``now`` asks for overtime instead: past its
    pickup code's validity (``pickup_until``) and its overtime collected from the customer (not by a Pay Score
    service order). The one rule the door-open API and the clock the pages read apply."""
    return now > pickup_until and overtime_collection(rental) == OvertimeCollection.CUSTOMER


def overtime_open_order(rental: Order) -> Order | None:
    """The rental's unpaid overtime order, if any (no lock)."""
    return rental.overtime_orders.filter(status=Status.PENDING_PAYMENT).first()


def _has_open_payment(order: Order) -> bool:
    payments = order.payments  # payments' reverse relation: orders does not import payments (a floor above)
    return payments.filter(status__in=payments.model.OPEN).exists()


def _priced(rental: Order, *, now: datetime) -> tuple[int, int, dict]:
    """(amount_fen, billed_hours, pricing) of the rental's overtime at ``now``; 409 ``not_overdue`` if none."""
    quote = overtime_since(size=rental.compartment.size, rental_ends_at=rental.rental_ends_at, at=now)
    if quote.amount_fen <= 0:
        raise Conflict("This rental is not overdue.", code="not_overdue", details={"order_no": rental.order_no})
    covers_until = rental.rental_ends_at + timedelta(seconds=quote.billed_hours * HOUR_SECONDS)
    pricing = {
        **quote.as_dict(),
        # in TIME_ZONE: the order's page shows these to people as they are
        "rental_ends_at": timezone.localtime(rental.rental_ends_at).isoformat(),
        "covers_until": timezone.localtime(covers_until).isoformat(),
        "priced_at": timezone.localtime(now).isoformat(),
    }
    return quote.amount_fen, quote.billed_hours, pricing


def _check_rental(rental: Order) -> None:
    if rental.kind != Order.Kind.LOCKER_RENTAL or rental.rental_ends_at is None or rental.completed_at is not None:
        raise Conflict("Only a running rental has overtime.", code="order_not_paid", details={"status": rental.status})
    if rental.status not in (*RUNNING, Status.ABANDONED):
        raise Conflict("Only a running rental has overtime.", code="order_not_paid", details={"status": rental.status})


def overtime_order_for_rental(
    *, rental_id: int, actor: Actor, now: datetime | None = None, owed: bool = False
) -> Order:
    """The rental's one unpaid overtime order, priced up to ``now``: created, returned as it is, or re-priced
    (see the module's pricing rule). Payable for ``ORDER_EXPIRY``; ``owed`` (an abandoned rental's overtime,
    recorded for finance): re-priced up to ``now`` unless a payment is open, payable for ``OVERTIME_OWED_PAYABLE``.

    Raises 409 ``order_not_paid`` (not a running or abandoned rental), ``not_overdue``, ``no_price_plan``.
    Safe to call concurrently: the database keeps one unpaid overtime order per rental.
    """
    now = now or timezone.now()
    expires_at = now + (settings.OVERTIME_OWED_PAYABLE if owed else settings.ORDER_EXPIRY)
    with transaction.atomic():
        overtime = Order.objects.select_for_update().filter(parent_id=rental_id, status=Status.PENDING_PAYMENT).first()
        rental = Order.objects.select_for_update(of=("self",)).select_related("compartment").get(pk=rental_id)
        if overtime is None:
            return _create(rental, actor=actor, now=now, expires_at=expires_at)
        if not (owed or _stale(overtime, now=now)) or _has_open_payment(overtime):
            return overtime
        _check_rental(rental)
        amount, hours, pricing = _priced(rental, now=now)
        before = overtime.amount_fen
        overtime.amount_fen, overtime.hours, overtime.pricing, overtime.expires_at = amount, hours, pricing, expires_at
        overtime.save(update_fields=["amount_fen", "hours", "pricing", "expires_at", "updated_at"])
        data = {"from_fen": before, "to_fen": amount, "covers_until": pricing["covers_until"]}
        order_event(overtime, action="reprice", actor=actor, data=data)
        return overtime


def _stale(overtime: Order, *, now: datetime) -> bool:
    """Past the hours it covers, or past its payment deadline."""
    covers_until = parse_datetime(overtime.pricing.get("covers_until", ""))
    return covers_until is None or now > covers_until or overtime.expires_at <= now


def _create(rental: Order, *, actor: Actor, now: datetime, expires_at: datetime) -> Order:
    _check_rental(rental)
    amount, hours, pricing = _priced(rental, now=now)
    try:
        with transaction.atomic():
            overtime = Order.objects.create(
                order_no=order_no_new("OT", now=now),
                user_id=rental.user_id,
                kind=Order.Kind.LOCKER_OVERTIME,
                parent=rental,
                compartment_id=rental.compartment_id,
                hours=hours,
                amount_fen=amount,
                pricing=pricing,
                expires_at=expires_at,
            )
    except IntegrityError:  # a concurrent ask created it since our first look: that one is the order
        return Order.objects.get(parent=rental, status=Status.PENDING_PAYMENT)
    OrderEvent.objects.create(
        order=overtime,
        action="create",
        to_status=overtime.status,
        actor=str(actor),
        data={"rental": rental.order_no, "covers_until": pricing["covers_until"]},
    )
    return overtime


def overtime_fulfil(overtime: Order, *, actor: Actor, now: datetime | None = None) -> None:
    """The overtime order was just marked paid (locked, in the paying transaction): the rental's paid end moves
    to the end of the hours paid for (its pickup code with it), then, if the compartment is still the rental's
    and the cabinet online, the door-open command for the pickup is recorded and the rental completes.

    Refuses nothing: a payment is never rolled back here. A rental no longer running (abandoned, refunded) only
    records that its overtime was paid. Cabinet offline: the rental stays paid with its new end, and the
    customer opens the door when it is back.
    """
    now = now or timezone.now()
    rental = (
        Order.objects.select_for_update(of=("self",)).select_related("compartment__cabinet").get(pk=overtime.parent_id)
    )
    event = {"overtime": overtime.order_no, "amount_fen": overtime.amount_fen}
    if rental.status not in RUNNING or rental.completed_at is not None:
        order_event(rental, action="overtime_paid", actor=actor, data={**event, "door": "not opened: not running"})
        return
    covers_until = parse_datetime(overtime.pricing["covers_until"])
    before = rental.rental_ends_at
    if covers_until > before:
        rental.rental_ends_at = covers_until
        rental.save(update_fields=["rental_ends_at", "updated_at"])
        lockers.pickup_code_extend(
            reference=rental.order_no, valid_until=covers_until + settings.PICKUP_CODE_GRACE, actor=actor
        )
    event.update({"rental_ends_at_before": before.isoformat(), "rental_ends_at": rental.rental_ends_at.isoformat()})
    compartment = rental.compartment
    held = compartment.status == Compartment.Status.OCCUPIED and compartment.reference == rental.order_no
    if not (held and compartment.cabinet.is_online):
        order_event(rental, action="overtime_paid", actor=actor, data={**event, "door": "not opened: offline"})
        return
    try:
        with transaction.atomic():  # a refusal (taken or offline since our look) must not undo the payment
            command = lockers.door_open(
                compartment_id=compartment.pk, reference=rental.order_no, actor=actor, purpose=DoorPurpose.PICKUP
            )
    except Conflict as exc:
        order_event(rental, action="overtime_paid", actor=actor, data={**event, "door": f"not opened: {exc.code}"})
        return
    order_event(rental, action="overtime_paid", actor=actor, data={**event, "door_command": command.pk})
    order_complete(
        order_id=rental.pk,
        actor=actor,
        reason="picked up after paying overtime",
        now=now,
        data={"door_command": command.pk, "overtime": overtime.order_no},
        locked_order=rental,
    )
