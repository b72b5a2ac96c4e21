"""orders.services: pricing, the order state machine, cancel (with its hooks) and refunds of orders."""

import pytest
from django.utils import timezone

from core.audit import Actor
from core.errors import InvalidTransition, NotFound
from lockers.models import Compartment, LockerEvent, PickupCode
from lockers.tasks import door_open_send_task
from lockers.tests.factories import CompartmentFactory, PricePlanFactory
from orders import services
from orders.models import Order, OrderEvent
from orders.tests.factories import RentalOrderFactory, TopupOrderFactory
from wallets.models import Wallet

pytestmark = pytest.mark.django_db
S = Order.Status
ACTOR = Actor.system("test")


def test_rental_is_priced_by_the_server_and_reserves_the_compartment(user):
    PricePlanFactory(size="L", price_per_hour_fen=800, min_hours=2, cap_fen=8_000)
    compartment = CompartmentFactory(size="L")
    order = services.order_create_rental(user=user, compartment_id=compartment.pk, hours=3)
    assert order.amount_fen == 2_400
    assert order.pricing["billed_hours"] == 3
    assert order.status == S.PENDING_PAYMENT
    assert order.expires_at > timezone.now()
    compartment.refresh_from_db()
    assert (compartment.status, compartment.reference) == (Compartment.Status.RESERVED, order.order_no)
    assert OrderEvent.objects.filter(order=order, action="create", actor=f"user:{user.pk}").exists()


def test_unknown_compartment_writes_nothing(user):
    with pytest.raises(NotFound):
        services.order_create_rental(user=user, compartment_id=999_999, hours=1)
    assert not Order.objects.exists()


def test_rental_without_price_plan_writes_nothing(user):
    compartment = CompartmentFactory(size="S")
    with pytest.raises(Exception) as err:
        services.order_create_rental(user=user, compartment_id=compartment.pk, hours=1)
    assert getattr(err.value, "code", "") == "no_price_plan"
    compartment.refresh_from_db()
    assert compartment.status == Compartment.Status.FREE and not Order.objects.exists()


def _order_in(status):
    order = RentalOrderFactory()
    Order.objects.filter(pk=order.pk).update(status=status)
    return Order.objects.get(pk=order.pk)


CALLS = {
    "cancel": lambda o: services.order_cancel(order_id=o.pk, actor=ACTOR, reason="t"),
    "mark_paid": lambda o: services.order_mark_paid(order_id=o.pk, paid_at=timezone.now(), actor=ACTOR),
    "complete": lambda o: services.order_complete(order_id=o.pk, actor=ACTOR),
    "refund_part": lambda o: services.order_mark_refunded(order_id=o.pk, refunded_fen=1, actor=ACTOR),
    "refund_full": lambda o: services.order_mark_refunded(order_id=o.pk, refunded_fen=o.amount_fen, actor=ACTOR),
}
TARGET = {
    "cancel": S.CANCELLED,
    "mark_paid": S.PAID,
    "complete": S.COMPLETED,
    "refund_part": S.PARTIALLY_REFUNDED,
    "refund_full": S.REFUNDED,
}
IDEMPOTENT = {("cancel", S.CANCELLED), ("mark_paid", S.PAID)}  # a repeat is a no-op, not an error


@pytest.mark.parametrize("start", list(S))
@pytest.mark.parametrize("call", list(CALLS))
def test_every_order_transition_allowed_or_refused(start, call):
    order = _order_in(start)
    events = OrderEvent.objects.filter(order=order).count()
    allowed = TARGET[call] in Order.TRANSITIONS[start]
    if (call, start) in IDEMPOTENT:
        CALLS[call](order)
        assert OrderEvent.objects.filter(order=order).count() == events
    elif allowed:
        CALLS[call](order)
        order.refresh_from_db()
        assert order.status == TARGET[call]
        event = OrderEvent.objects.filter(order=order).latest("id")
        assert (event.from_status, event.to_status) == (start, TARGET[call])
    else:
        with pytest.raises(InvalidTransition):
            CALLS[call](order)
        order.refresh_from_db()
        assert order.status == start
        assert OrderEvent.objects.filter(order=order).count() == events


def test_paid_rental_occupies_issues_code_and_opens_door_after_commit(django_capture_on_commit_callbacks):
    order = RentalOrderFactory()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.order_mark_paid(order_id=order.pk, paid_at=timezone.now(), actor=Actor.gateway("wechat"))
    order.refresh_from_db()
    assert order.status == S.PAID and order.rental_ends_at is not None
    assert Compartment.objects.get(pk=order.compartment_id).status == Compartment.Status.OCCUPIED
    assert PickupCode.objects.filter(reference=order.order_no, status="active").count() == 1
    # the door-open command is recorded with the payment, for delivery; the driver gets it after commit
    command = LockerEvent.objects.get(action="door_open_command", reference=order.order_no)
    assert (command.actor, command.data["purpose"]) == ("gateway:wechat", "delivery")
    assert len(callbacks) == 1 and not LockerEvent.objects.filter(action="door_open_sent").exists()
    door_open_send_task.run(command.pk)  # what the worker runs
    assert LockerEvent.objects.filter(action="door_open_sent", reference=order.order_no).exists()


def test_cancel_releases_the_compartment():
    order = RentalOrderFactory()
    services.order_cancel(order_id=order.pk, actor=ACTOR, reason="user")
    compartment = Compartment.objects.get(pk=order.compartment_id)
    assert (compartment.status, compartment.reference) == (Compartment.Status.FREE, "")


def test_paid_topup_credits_the_wallet_exactly_once():
    order = TopupOrderFactory(amount_fen=12_345)
    for _ in range(2):
        services.order_mark_paid(order_id=order.pk, paid_at=timezone.now(), actor=ACTOR)
    wallet = Wallet.objects.get(user=order.user)
    assert wallet.balance_fen == 12_345
    assert wallet.transactions.count() == 1


def test_full_refund_cancels_pickup_code():
    order = RentalOrderFactory()
    services.order_mark_paid(order_id=order.pk, paid_at=timezone.now(), actor=ACTOR)
    services.order_mark_refunded(order_id=order.pk, refunded_fen=order.amount_fen, actor=ACTOR)
    assert not PickupCode.objects.filter(reference=order.order_no, status="active").exists()


def test_user_cancel_of_paid_order_is_refused():
    order = _order_in(S.PAID)
    with pytest.raises(Exception) as err:
        services.order_cancel_by_user(order_id=order.pk, actor=ACTOR, reason="x")
    assert err.value.code == "invalid_transition"


def test_an_owners_cancel_runs_the_registered_hooks_first(monkeypatch):
    from orders import hooks
    from payments.services import payments_close_for_cancel

    assert payments_close_for_cancel in hooks.user_cancel_hooks()  # payments registers it in ready()
    seen = []
    monkeypatch.setattr(hooks, "_user_cancel", [])
    hooks.on_user_cancel(lambda *, order, actor, reason: seen.append((order.status, str(actor), reason)))
    order = RentalOrderFactory()

    services.order_cancel_by_user(order_id=order.pk, actor=ACTOR, reason="changed my mind")

    assert seen == [(S.PENDING_PAYMENT, "system:test", "changed my mind")]
    assert Order.objects.get(pk=order.pk).status == S.CANCELLED
