"""The rental's life: paid -> picked up within the paid time (completed, compartment free, code used) ->
open again for a short while; past the pickup code's validity the door stays shut until overtime is paid.
A test clock (``now``) throughout, never a sleep."""

from datetime import timedelta

import pytest
from django.utils import timezone

from conftest import run_concurrently
from core.audit import Actor
from core.errors import Conflict, NotFound
from core.tests.factories import UserFactory
from lockers.models import Compartment, LockerEvent, PickupCode
from orders import services
from orders.models import Order, OrderEvent
from orders.overtime import OvertimeDue
from orders.selectors import rental_clock
from orders.tests.factories import RentalOrderFactory, TopupOrderFactory

pytestmark = pytest.mark.django_db
S = Order.Status
T0 = timezone.now().replace(microsecond=0)


def paid_rental(hours: int = 2, paid_at=T0) -> Order:
    order = RentalOrderFactory(hours=hours)
    return services.order_mark_paid(order_id=order.pk, paid_at=paid_at, actor=Actor.gateway("wechat"))


def open_door(order: Order, now):
    return services.order_open_door(order_no=order.order_no, user=order.user, now=now)


def refusal(order: Order, now) -> Conflict:
    with pytest.raises(Conflict) as err:
        open_door(order, now)
    return err.value


def commands(order: Order) -> list[tuple[str, str]]:
    rows = LockerEvent.objects.filter(reference=order.order_no, action="door_open_command").order_by("id")
    return [(e.data["purpose"], e.actor) for e in rows]


def test_pickup_within_the_paid_time_completes_the_rental_and_frees_the_compartment(settings):
    order = paid_rental(hours=2)
    at = T0 + timedelta(hours=1, minutes=30)

    assert open_door(order, at) == "pickup"

    order.refresh_from_db()
    customer = f"user:{order.user_id}"
    assert (order.status, order.completed_at) == (S.COMPLETED, at)
    compartment = Compartment.objects.get(pk=order.compartment_id)
    assert (compartment.status, compartment.reference) == ("free", "")
    assert PickupCode.objects.get(reference=order.order_no).status == "used"
    # audited: the order's completion by the customer, and each locker step with its actor
    complete = OrderEvent.objects.get(order=order, action="complete")
    assert (complete.from_status, complete.to_status, complete.actor, complete.reason) == (
        "paid",
        "completed",
        customer,
        "picked up",
    )
    assert commands(order) == [("delivery", "gateway:wechat"), ("pickup", customer)]
    assert complete.data["door_command"] == LockerEvent.objects.filter(action="door_open_command").latest("id").pk
    steps = LockerEvent.objects.filter(reference=order.order_no, actor=customer).values_list("action", flat=True)
    assert list(steps) == ["reserve", "door_open_command", "pickup_code_used", "release"]


def test_the_compartment_can_be_rented_again_after_the_pickup(user):
    order = paid_rental()
    open_door(order, T0 + timedelta(minutes=5))
    again = services.order_create_rental(user=user, compartment_id=order.compartment_id, hours=1)
    assert Compartment.objects.get(pk=order.compartment_id).reference == again.order_no


def test_pickup_in_the_grace_after_the_paid_time(settings):
    order = paid_rental(hours=2)
    last_second = T0 + timedelta(hours=2) + settings.PICKUP_CODE_GRACE
    assert PickupCode.objects.get(reference=order.order_no).valid_until == last_second
    assert open_door(order, last_second) == "pickup"


def test_past_the_pickup_code_validity_the_door_stays_shut_until_the_overtime_is_paid(settings):
    order = paid_rental(hours=2)
    late = T0 + timedelta(hours=2) + settings.PICKUP_CODE_GRACE + timedelta(seconds=1)

    with pytest.raises(OvertimeDue) as err:
        open_door(order, late)

    assert (err.value.code, err.value.http_status) == ("overtime_due", 402)
    overdue = settings.PICKUP_CODE_GRACE + timedelta(seconds=1)
    assert err.value.details["overdue_seconds"] == int(overdue.total_seconds())
    overtime = Order.objects.get(parent=order)
    assert err.value.details["order_no"] == overtime.order_no and overtime.status == S.PENDING_PAYMENT
    order.refresh_from_db()
    assert order.status == S.PAID and order.completed_at is None
    assert Compartment.objects.get(pk=order.compartment_id).status == "occupied"
    assert PickupCode.objects.get(reference=order.order_no).status == "active"
    assert commands(order) == [("delivery", "gateway:wechat")]


def test_open_again_within_the_window_then_never(settings):
    order = paid_rental()
    picked_up = T0 + timedelta(minutes=40)
    open_door(order, picked_up)

    assert open_door(order, picked_up + settings.RENTAL_REOPEN) == "reopen"

    order.refresh_from_db()
    assert order.status == S.COMPLETED  # the order does not change
    customer = f"user:{order.user_id}"
    event = OrderEvent.objects.get(order=order, action="open_again")
    assert (event.from_status, event.to_status, event.actor) == ("completed", "completed", customer)
    assert commands(order)[-1] == ("reopen", customer)
    err = refusal(order, picked_up + settings.RENTAL_REOPEN + timedelta(seconds=1))
    assert err.code == "rental_completed" and err.details["reopen_until"].endswith("+08:00")  # TIME_ZONE, as elsewhere


def test_open_again_refused_once_someone_else_took_the_compartment(user):
    order = paid_rental()
    open_door(order, T0 + timedelta(minutes=1))
    services.order_create_rental(user=user, compartment_id=order.compartment_id, hours=1)
    assert refusal(order, T0 + timedelta(minutes=2)).code == "compartment_taken"
    assert [p for p, _ in commands(order)] == ["delivery", "pickup"]


def test_a_partially_refunded_rental_is_picked_up():
    order = paid_rental()
    services.order_mark_refunded(order_id=order.pk, refunded_fen=1, actor=Actor.system("test"))
    assert open_door(order, T0 + timedelta(minutes=1)) == "pickup"
    assert Order.objects.get(pk=order.pk).status == S.COMPLETED


@pytest.mark.parametrize("state", ["unpaid", "refunded", "topup"])
def test_only_a_paid_rental_opens(state):
    if state == "topup":
        order = TopupOrderFactory()
        services.order_mark_paid(order_id=order.pk, paid_at=T0, actor=Actor.system("test"))
    elif state == "unpaid":
        order = RentalOrderFactory()
    else:
        order = paid_rental()
        services.order_mark_refunded(order_id=order.pk, refunded_fen=order.amount_fen, actor=Actor.system("test"))
    assert refusal(order, T0 + timedelta(minutes=1)).code == "order_not_paid"
    assert not LockerEvent.objects.filter(reference=order.order_no, data__purpose="pickup").exists()


def test_someone_elses_rental_is_not_found():
    order = paid_rental()
    with pytest.raises(NotFound):
        services.order_open_door(order_no=order.order_no, user=UserFactory(), now=T0)
    assert Order.objects.get(pk=order.pk).status == S.PAID


def test_the_rental_clock(settings):
    order = paid_rental(hours=2)
    code = PickupCode.objects.get(reference=order.order_no)
    pickup_until = T0 + timedelta(hours=2) + settings.PICKUP_CODE_GRACE

    running = rental_clock(order, code=code, now=T0 + timedelta(minutes=30))
    assert (running.time_left_seconds, running.pickup_until, running.door) == (5_400, pickup_until, "pickup")
    in_grace = rental_clock(order, code=code, now=T0 + timedelta(hours=2, minutes=1))
    assert (in_grace.time_left_seconds, in_grace.door) == (0, "pickup")
    overdue = rental_clock(order, code=code, now=pickup_until + timedelta(seconds=1))
    assert (overdue.time_left_seconds, overdue.door) == (0, "overdue")

    open_door(order, T0 + timedelta(hours=1))
    order.refresh_from_db()
    reopen_until = T0 + timedelta(hours=1) + settings.RENTAL_REOPEN
    done = rental_clock(order, code=None, now=reopen_until)
    assert (done.time_left_seconds, done.reopen_until, done.door) == (None, reopen_until, "reopen")
    assert rental_clock(order, code=None, now=reopen_until + timedelta(seconds=1)).door == ""
    assert rental_clock(RentalOrderFactory(), code=None, now=T0).door == ""  # unpaid


@pytest.mark.django_db(transaction=True)
def test_two_taps_at_once_complete_the_rental_once():
    order = paid_rental()
    at = T0 + timedelta(minutes=10)

    results = run_concurrently(open_door, args_list=[(order, at), (order, at)])

    assert sorted(str(r) for r in results) == ["pickup", "reopen"]  # the second sees the completed rental
    assert OrderEvent.objects.filter(order=order, action="complete").count() == 1
    assert Compartment.objects.get(pk=order.compartment_id).status == "free"
