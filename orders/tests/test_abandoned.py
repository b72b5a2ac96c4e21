"""Abandoned compartments: the beat job (idempotent, concurrent runs against PostgreSQL), the owed overtime,
the customer's door staying shut, and operations' task list in admin with the audited staff door-open."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conftest import run_concurrently
from core.audit import Actor
from core.errors import DomainError
from lockers.models import Compartment, LockerEvent, PickupCode
from orders import services
from orders.abandoned import abandoned_to_clear, rental_clear_abandoned, rentals_abandon_overdue
from orders.models import Order, OrderEvent
from orders.tests.factories import RentalOrderFactory
from orders.tests.test_overtime import pay_overtime
from refunds.tests.test_admin_helpers import staff_in

S = Order.Status
T0 = timezone.now().replace(microsecond=0)


def paid_rental(hours: int = 2, paid_at=T0) -> Order:
    order = RentalOrderFactory(hours=hours)  # plan M: 500 fen/h, cap (and daily cap) 5,000 fen
    return services.order_mark_paid(order_id=order.pk, paid_at=paid_at, actor=Actor.gateway("wechat"))


def past_abandonment(settings, order: Order, by=timedelta(seconds=1)):
    return order.rental_ends_at + settings.ABANDONED_AFTER + by


@pytest.mark.django_db
def test_the_job_abandons_only_rentals_overdue_past_the_setting_and_records_the_overtime_owed(settings):
    overdue, in_time, done = paid_rental(), paid_rental(hours=5), paid_rental()
    services.order_open_door(order_no=done.order_no, user=done.user, now=T0 + timedelta(hours=1))
    now = past_abandonment(settings, overdue)

    run = rentals_abandon_overdue(now=now)

    assert run.abandoned == [overdue.order_no]
    overdue.refresh_from_db()
    assert (overdue.status, overdue.abandoned_at) == (S.ABANDONED, now)
    event = OrderEvent.objects.get(order=overdue, action="abandon")
    assert (event.from_status, event.to_status, event.actor) == ("paid", "abandoned", "system:abandon_job")
    assert event.data["overdue_seconds"] == int((settings.ABANDONED_AFTER + timedelta(seconds=1)).total_seconds())
    owed = Order.objects.get(parent=overdue)
    assert run.owed == [owed.order_no]
    # 72 h 0 min 1 s overdue: 73 started hours, 3 capped days and 1 hour
    assert (owed.status, owed.hours, owed.amount_fen) == (S.PENDING_PAYMENT, 73, 3 * 5_000 + 500)
    assert owed.expires_at == now + settings.OVERTIME_OWED_PAYABLE  # left for finance, not expired in 15 min
    for other in (in_time, done):
        other.refresh_from_db()
        assert other.abandoned_at is None and not other.overtime_orders.exists()
    # the compartment stays the rental's until operations clear it
    assert Compartment.objects.get(pk=overdue.compartment_id).status == "occupied"
    assert list(abandoned_to_clear()) == [overdue]

    again = rentals_abandon_overdue(now=now + timedelta(hours=1))

    assert (again.abandoned, again.owed) == ([], [])
    assert OrderEvent.objects.filter(order=overdue, action="abandon").count() == 1
    assert Order.objects.filter(parent=overdue).count() == 1


@pytest.mark.django_db
def test_an_abandoned_rental_does_not_open_for_the_customer(settings):
    rental = paid_rental()
    now = past_abandonment(settings, rental)
    rentals_abandon_overdue(now=now)
    with pytest.raises(DomainError) as err:
        services.order_open_door(order_no=rental.order_no, user=rental.user, now=now)
    assert (err.value.code, err.value.http_status) == ("rental_abandoned", 409)


@pytest.mark.django_db
def test_owed_overtime_paid_after_abandonment_settles_the_debt_and_opens_nothing(settings):
    rental = paid_rental()
    now = past_abandonment(settings, rental)
    rentals_abandon_overdue(now=now)
    owed = Order.objects.get(parent=rental)

    pay_overtime(owed, now + timedelta(days=3))

    owed.refresh_from_db()
    rental.refresh_from_db()
    assert (owed.status, rental.status) == (S.PAID, S.ABANDONED)
    event = OrderEvent.objects.get(order=rental, action="overtime_paid")
    assert event.data["door"] == "not opened: not running"
    assert not LockerEvent.objects.filter(reference=rental.order_no, data__purpose="pickup").exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_abandon_each_rental_once(settings):
    rentals = [paid_rental() for _ in range(6)]
    now = past_abandonment(settings, rentals[-1])

    results = run_concurrently(lambda: rentals_abandon_overdue(now=now), args_list=[()] * 3)

    assert not [r for r in results if isinstance(r, BaseException)], results
    abandoned = [no for run in results for no in run.abandoned]
    assert sorted(abandoned) == sorted(r.order_no for r in rentals)  # each once, whichever run took it
    for rental in rentals:
        assert OrderEvent.objects.filter(order=rental, action="abandon").count() == 1
        assert Order.objects.filter(parent=rental, status=S.PENDING_PAYMENT).count() == 1
    assert Order.objects.filter(status=S.ABANDONED).count() == 6


@pytest.mark.django_db
def test_staff_clear_opens_with_who_and_why_and_frees_the_compartment(settings):
    rental = paid_rental()
    rentals_abandon_overdue(now=past_abandonment(settings, rental))
    operator = staff_in("operations")
    finance = staff_in("finance")

    with pytest.raises(DomainError) as err:
        rental_clear_abandoned(order_id=rental.pk, staff=finance, reason="looking")
    assert (err.value.code, err.value.http_status) == ("not_allowed", 403)
    with pytest.raises(DomainError) as err:
        rental_clear_abandoned(order_id=rental.pk, staff=operator, reason="  ")
    assert err.value.code == "invalid_input"
    assert Compartment.objects.get(pk=rental.compartment_id).status == "occupied"  # nothing written

    rental_clear_abandoned(order_id=rental.pk, staff=operator, reason="bag taken to the station office")

    compartment = Compartment.objects.get(pk=rental.compartment_id)
    assert (compartment.status, compartment.reference) == ("free", "")
    assert PickupCode.objects.get(reference=rental.order_no).status == "cancelled"
    command = LockerEvent.objects.filter(reference=rental.order_no, action="door_open_command").last()
    who = str(Actor.user(operator))  # staff:<id>
    assert (command.data["purpose"], command.actor, command.reason) == (
        "staff",
        who,
        "bag taken to the station office",
    )
    clear = OrderEvent.objects.get(order=rental, action="clear")
    assert (clear.actor, clear.reason, clear.data["door_command"]) == (
        who,
        "bag taken to the station office",
        command.pk,
    )
    assert Order.objects.get(parent=rental).status == S.PENDING_PAYMENT  # the owed overtime stays, for finance
    assert list(abandoned_to_clear()) == []
    with pytest.raises(DomainError) as err:
        rental_clear_abandoned(order_id=rental.pk, staff=operator, reason="again")
    assert err.value.code == "already_cleared"


@pytest.mark.django_db
def test_the_operations_task_list_in_admin(settings):
    rental = paid_rental()
    rentals_abandon_overdue(now=past_abandonment(settings, rental))
    owed = Order.objects.get(parent=rental)
    operations = Client()
    operations.force_login(staff_in("operations"))
    task_list = reverse("admin:orders_abandonedrental_changelist")
    clear_url = reverse("admin:orders_abandonedrental_clear", args=[rental.pk])

    page = operations.get(f"{task_list}?task=open")

    assert page.status_code == 200
    html = page.content.decode()
    assert rental.order_no in html and owed.order_no in html and "¥155.00" in html
    assert clear_url in html
    assert operations.get(reverse("admin:orders_order_changelist")).status_code == 403  # the task list only

    form = operations.get(clear_url)
    assert form.status_code == 200 and "Open the door and clear" in form.content.decode()
    refused = operations.post(clear_url, {"reason": ""})
    assert refused.status_code == 400
    assert Compartment.objects.get(pk=rental.compartment_id).status == "occupied"

    done = operations.post(clear_url, {"reason": "umbrella, kept at the desk"})

    assert done.status_code == 302 and done["Location"] == task_list
    assert Compartment.objects.get(pk=rental.compartment_id).status == "free"
    assert rental.order_no not in operations.get(f"{task_list}?task=open").content.decode()
    assert "cleared" in operations.get(f"{task_list}?task=cleared").content.decode()

    support = Client()
    support.force_login(staff_in("support"))
    assert support.get(task_list).status_code == 200  # support sees the list
    assert support.get(clear_url).status_code == 403  # and cannot open doors


def test_the_job_is_in_the_beat_schedule(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE["rentals-abandon-overdue"]
    assert schedule["task"] == "orders.rentals_abandon_overdue"
    from orders.tasks import rentals_abandon_overdue_task

    assert rentals_abandon_overdue_task.name == schedule["task"]


@pytest.mark.django_db
def test_an_abandoned_rental_is_refunded_by_staff_only(settings):
    from payments.services import payment_pay_with_wallet
    from refunds.services import refund_request
    from web.tests.helpers import fund

    rental = RentalOrderFactory()
    fund(rental.user, rental.amount_fen)
    payment_pay_with_wallet(user=rental.user, order_no=rental.order_no, now=T0)
    rental.refresh_from_db()
    rentals_abandon_overdue(now=past_abandonment(settings, rental))
    with pytest.raises(DomainError) as err:
        refund_request(order_no=rental.order_no, amount_fen=None, reason="mine", requested_by=rental.user)
    assert err.value.code == "refund_needs_staff"
    refund = refund_request(
        order_no=rental.order_no, amount_fen=100, reason="goodwill", requested_by=staff_in("support"), source="staff"
    )
    assert (refund.status, refund.amount_fen) == ("requested", 100)
