"""Overtime at pickup: asked for at the door past the pickup code's validity, priced by the server, one unpaid
order per rental, paid through the payment services (the wallet here; the sandbox gateways in the API and
browser tests), then the door opens and the rental completes. A test clock (``now``) throughout."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from conftest import run_concurrently
from core.audit import Actor
from core.errors import DomainError
from lockers.models import Compartment, LockerEvent, PickupCode
from orders import services
from orders.models import Order, OrderEvent
from orders.overtime import OvertimeCollection, OvertimeDue, overtime_collection, overtime_order_for_rental
from orders.tests.factories import RentalOrderFactory
from payments.models import Channel, Payment
from payments.services import payment_pay_with_wallet
from refunds.services import refund_request
from web.tests.helpers import fund

S = Order.Status
T0 = timezone.now().replace(microsecond=0)
HOUR = timedelta(hours=1)


def paid_rental(hours: int = 2, paid_at=T0) -> Order:
    order = RentalOrderFactory(hours=hours)  # plan M: 500 fen/h, cap 5,000 fen (the daily cap too)
    return services.order_mark_paid(order_id=order.pk, paid_at=paid_at, actor=Actor.gateway("wechat"))


def ask(order: Order, now) -> OvertimeDue:
    with pytest.raises(OvertimeDue) as err:
        services.order_open_door(order_no=order.order_no, user=order.user, now=now)
    return err.value


def pay_overtime(overtime: Order, now) -> Payment:
    fund(overtime.user, overtime.amount_fen)
    return payment_pay_with_wallet(user=overtime.user, order_no=overtime.order_no, now=now)


def late(settings, by=timedelta(seconds=1)):
    """Just past the pickup code's validity of a 2-hour rental paid at T0, plus ``by``."""
    return T0 + 2 * HOUR + settings.PICKUP_CODE_GRACE + by


@pytest.mark.django_db
def test_asking_again_returns_the_same_order_while_it_covers_the_time(settings):
    rental = paid_rental()
    first = ask(rental, late(settings))
    overtime = Order.objects.get(order_no=first.details["order_no"])
    assert (overtime.kind, overtime.parent, overtime.compartment_id) == (
        "locker_overtime",
        rental,
        rental.compartment_id,
    )
    # 1 h 0 min 1 s past the paid end (PICKUP_CODE_GRACE 1 h): 2 started hours at 500 fen
    assert (overtime.hours, overtime.amount_fen, first.details["amount_fen"]) == (2, 1_000, 1_000)
    covers_until = T0 + 2 * HOUR + 2 * HOUR
    assert overtime.pricing["covers_until"] == timezone.localtime(covers_until).isoformat()  # as people read it

    again = ask(rental, late(settings, by=timedelta(minutes=10)))  # same started hour, before the order expires

    assert again.details == first.details
    assert Order.objects.filter(parent=rental).count() == 1
    assert not OrderEvent.objects.filter(order=overtime, action="reprice").exists()


@pytest.mark.django_db
def test_an_unpaid_overtime_order_is_repriced_when_time_moves_on(settings):
    rental = paid_rental()
    overtime = Order.objects.get(order_no=ask(rental, late(settings)).details["order_no"])
    later = T0 + 2 * HOUR + 5 * HOUR + timedelta(minutes=1)  # 6 started hours

    due = ask(rental, later)

    overtime.refresh_from_db()
    assert (due.details["order_no"], due.details["amount_fen"]) == (overtime.order_no, 3_000)
    assert (overtime.amount_fen, overtime.hours, overtime.expires_at) == (3_000, 6, later + settings.ORDER_EXPIRY)
    event = OrderEvent.objects.get(order=overtime, action="reprice")
    assert (event.data["from_fen"], event.data["to_fen"], event.actor) == (1_000, 3_000, f"user:{rental.user_id}")
    assert (
        ask(rental, later + 2 * timedelta(days=1)).details["amount_fen"] == 2 * 5_000 + 3_000
    )  # two capped days, 6 hours


@pytest.mark.django_db
def test_an_overtime_order_with_an_open_payment_is_never_repriced(settings):
    rental = paid_rental()
    overtime = Order.objects.get(order_no=ask(rental, late(settings)).details["order_no"])
    Payment.objects.create(payment_no="PY-OPEN-1", order=overtime, channel=Channel.WECHAT_NATIVE, amount_fen=1_000)

    due = ask(rental, late(settings, by=10 * HOUR))

    assert (due.details["order_no"], due.details["amount_fen"]) == (overtime.order_no, 1_000)
    overtime.refresh_from_db()
    assert overtime.amount_fen == 1_000


@pytest.mark.django_db
def test_the_database_keeps_one_unpaid_overtime_order_per_rental(settings):
    rental = paid_rental()
    overtime = Order.objects.get(order_no=ask(rental, late(settings)).details["order_no"])
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.create(
            order_no="OT-SECOND",
            user=rental.user,
            kind=Order.Kind.LOCKER_OVERTIME,
            parent=rental,
            compartment=rental.compartment,
            hours=1,
            amount_fen=500,
            expires_at=overtime.expires_at,
        )
    with pytest.raises(IntegrityError), transaction.atomic():  # order_kind_shape: overtime names its rental
        Order.objects.filter(pk=overtime.pk).update(parent=None)


@pytest.mark.django_db
def test_paying_the_overtime_opens_the_door_and_completes_the_rental(settings):
    rental = paid_rental()
    at = late(settings, by=timedelta(minutes=5))
    overtime = Order.objects.get(order_no=ask(rental, at).details["order_no"])

    payment = pay_overtime(overtime, at)

    overtime.refresh_from_db()
    rental.refresh_from_db()
    assert (payment.status, overtime.status) == ("succeeded", S.PAID)
    assert rental.status == S.COMPLETED and rental.completed_at is not None
    assert rental.rental_ends_at == T0 + 4 * HOUR  # the paid end moved to the end of the hours paid for
    compartment = Compartment.objects.get(pk=rental.compartment_id)
    assert (compartment.status, compartment.reference) == ("free", "")
    assert PickupCode.objects.get(reference=rental.order_no).status == "used"
    customer = f"user:{rental.user_id}"
    command = LockerEvent.objects.filter(reference=rental.order_no, action="door_open_command").last()
    assert (command.data["purpose"], command.actor) == ("pickup", customer)
    paid = OrderEvent.objects.get(order=rental, action="overtime_paid")
    assert (paid.data["overtime"], paid.data["door_command"], paid.actor) == (overtime.order_no, command.pk, customer)
    complete = OrderEvent.objects.get(order=rental, action="complete")
    assert complete.data["overtime"] == overtime.order_no
    assert services.order_open_door(order_no=rental.order_no, user=rental.user) == "reopen"


@pytest.mark.django_db
def test_paid_while_the_cabinet_is_offline_the_rental_runs_on_until_the_door_can_open(settings):
    rental = paid_rental()
    at = late(settings)
    overtime = Order.objects.get(order_no=ask(rental, at).details["order_no"])
    rental.compartment.cabinet.is_online = False
    rental.compartment.cabinet.save()

    pay_overtime(overtime, at)  # the payment stands: nothing is rolled back for a door

    rental.refresh_from_db()
    assert rental.status == S.PAID and rental.rental_ends_at == T0 + 4 * HOUR
    code = PickupCode.objects.get(reference=rental.order_no)
    assert code.valid_until == T0 + 4 * HOUR + settings.PICKUP_CODE_GRACE
    assert OrderEvent.objects.get(order=rental, action="overtime_paid").data["door"] == "not opened: offline"
    rental.compartment.cabinet.is_online = True
    rental.compartment.cabinet.save()
    assert services.order_open_door(order_no=rental.order_no, user=rental.user, now=at + HOUR) == "pickup"


@pytest.mark.django_db
def test_a_rental_within_its_time_has_no_overtime_and_a_top_up_none_at_all(settings):
    rental = paid_rental()
    with pytest.raises(DomainError) as err:
        overtime_order_for_rental(rental_id=rental.pk, actor=Actor.system("t"), now=T0 + HOUR)
    assert err.value.code == "not_overdue"
    unpaid = RentalOrderFactory()
    with pytest.raises(DomainError) as err:
        overtime_order_for_rental(rental_id=unpaid.pk, actor=Actor.system("t"), now=T0)
    assert err.value.code == "order_not_paid"
    assert not Order.objects.filter(kind=Order.Kind.LOCKER_OVERTIME).exists()


@pytest.mark.django_db
def test_paid_overtime_is_refunded_by_staff_only_and_collected_from_the_customer(settings):
    rental = paid_rental()
    at = late(settings)
    overtime = Order.objects.get(order_no=ask(rental, at).details["order_no"])
    assert overtime_collection(rental) == OvertimeCollection.CUSTOMER
    pay_overtime(overtime, at)
    with pytest.raises(DomainError) as err:
        refund_request(order_no=overtime.order_no, amount_fen=None, reason="no", requested_by=rental.user)
    assert (err.value.code, err.value.http_status) == ("refund_needs_staff", 403)


@pytest.mark.django_db(transaction=True)
def test_concurrent_asks_make_one_overtime_order(settings):
    rental = paid_rental()
    at = late(settings)

    results = run_concurrently(
        lambda: overtime_order_for_rental(rental_id=rental.pk, actor=Actor.user(rental.user), now=at),
        args_list=[()] * 4,
    )

    assert not [r for r in results if isinstance(r, BaseException)], results
    assert len({r.order_no for r in results}) == 1
    assert Order.objects.filter(parent=rental).count() == 1
    assert OrderEvent.objects.filter(order__parent=rental, action="create").count() == 1


@pytest.mark.django_db
def test_a_payment_takes_the_amount_of_the_order_as_it_stands_under_its_lock(settings):
    """A re-pricing between a payment's start reading the order and locking it: the payment has the new amount
    (and a cancelled order gets no payment at all)."""
    from payments.services import _payment_create

    rental = paid_rental()
    overtime = Order.objects.get(order_no=ask(rental, late(settings)).details["order_no"])
    stale = Order.objects.get(pk=overtime.pk)
    ask(rental, late(settings, by=3 * HOUR))  # re-priced: no payment was open

    payment = _payment_create(order=stale, channel="wechat_native", openid="", client_ip=None, actor=Actor.system("t"))

    assert stale.amount_fen == 1_000 and payment.amount_fen == Order.objects.get(pk=overtime.pk).amount_fen == 2_000
    Payment.objects.filter(pk=payment.pk).update(status=Payment.Status.CLOSED)
    Order.objects.filter(pk=overtime.pk).update(status=S.CANCELLED)
    with pytest.raises(DomainError) as err:
        _payment_create(order=stale, channel="wechat_native", openid="", client_ip=None, actor=Actor.system("t"))
    assert err.value.code == "order_not_payable"
