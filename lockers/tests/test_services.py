"""lockers.services: compartments reserved, occupied and released only by their order, pickup codes,
door commands recorded under the lock and sent after commit."""

from datetime import timedelta

import pytest
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from conftest import run_concurrently
from core.audit import Actor
from core.errors import Conflict, DomainError, InvalidTransition
from lockers import services
from lockers.drivers import SimulatedDoorDriver
from lockers.models import (
    DOOR_OPEN_COMMAND,
    DOOR_OPEN_EXPIRED,
    DOOR_OPEN_SENT,
    Compartment,
    DoorPurpose,
    LockerEvent,
    PickupCode,
)
from lockers.selectors import door_opened_by_customer
from lockers.tasks import door_open_task
from lockers.tests.factories import CabinetFactory, CompartmentFactory

pytestmark = pytest.mark.django_db
S = Compartment.Status
ACTOR = Actor.system("test")


def _in(status, reference=""):
    c = CompartmentFactory()
    if status != S.FREE:
        ref = reference or ("ORDER1" if status in (S.RESERVED, S.OCCUPIED) else "")
        Compartment.objects.filter(pk=c.pk).update(status=status, reference=ref)
    return c


TRANSITIONS = [  # (function, from status, allowed)
    ("reserve", S.FREE, True),
    ("reserve", S.RESERVED, False),
    ("reserve", S.OCCUPIED, False),
    ("reserve", S.OUT_OF_SERVICE, False),
    ("occupy", S.RESERVED, True),
    ("occupy", S.FREE, False),
    ("occupy", S.OUT_OF_SERVICE, False),
    ("out_of_service", S.FREE, True),
    ("out_of_service", S.RESERVED, False),
    ("out_of_service", S.OCCUPIED, False),
    ("return_to_service", S.OUT_OF_SERVICE, True),
    ("return_to_service", S.FREE, False),
    ("return_to_service", S.OCCUPIED, False),
]


def _call(name, compartment):
    kw = {"compartment_id": compartment.pk, "actor": ACTOR}
    return {
        "reserve": lambda: services.compartment_reserve(reference="ORDER1", **kw),
        "occupy": lambda: services.compartment_occupy(reference="ORDER1", **kw),
        "out_of_service": lambda: services.compartment_set_out_of_service(reason="broken", **kw),
        "return_to_service": lambda: services.compartment_return_to_service(**kw),
    }[name]()


@pytest.mark.parametrize(("name", "start", "allowed"), TRANSITIONS)
def test_compartment_transitions(name, start, allowed):
    compartment = _in(start)
    events_before = LockerEvent.objects.count()
    if allowed:
        after = _call(name, compartment)
        assert after.status != start
        assert LockerEvent.objects.count() == events_before + 1
        event = LockerEvent.objects.latest("id")
        assert (event.from_status, event.to_status, event.actor) == (start, after.status, "system:test")
    else:
        # as its caller would: a refusal rolls back the caller's transaction (occupy opens no savepoint)
        with pytest.raises((Conflict, InvalidTransition)), transaction.atomic():
            _call(name, compartment)
        compartment.refresh_from_db()
        assert compartment.status == start
        assert LockerEvent.objects.count() == events_before


def test_occupy_needs_the_reserving_order():
    compartment = _in(S.RESERVED, reference="OTHER")
    with pytest.raises(InvalidTransition), transaction.atomic():
        services.compartment_occupy(compartment_id=compartment.pk, reference="ORDER1", actor=ACTOR)


def test_release_only_by_the_holder_and_idempotent():
    compartment = _in(S.OCCUPIED, reference="ORDER1")
    services.compartment_release(compartment_id=compartment.pk, reference="SOMEONE_ELSE", actor=ACTOR)
    compartment.refresh_from_db()
    assert compartment.status == S.OCCUPIED
    services.compartment_release(compartment_id=compartment.pk, reference="ORDER1", actor=ACTOR)
    services.compartment_release(compartment_id=compartment.pk, reference="ORDER1", actor=ACTOR)
    compartment.refresh_from_db()
    assert (compartment.status, compartment.reference) == (S.FREE, "")
    assert LockerEvent.objects.filter(action="release").count() == 1


def test_offline_cabinet_cannot_be_reserved():
    compartment = CompartmentFactory(cabinet=CabinetFactory(is_online=False))
    with pytest.raises(Conflict) as err:
        services.compartment_reserve(compartment_id=compartment.pk, reference="O1", actor=ACTOR)
    assert err.value.code == "cabinet_offline"


def test_pickup_code_is_issued_once_per_order_and_cancellable():
    compartment = _in(S.OCCUPIED, reference="ORDER1")
    until = timezone.now() + timedelta(hours=2)
    first = services.pickup_code_issue(
        compartment_id=compartment.pk, reference="ORDER1", valid_until=until, actor=ACTOR
    )
    again = services.pickup_code_issue(
        compartment_id=compartment.pk, reference="ORDER1", valid_until=until, actor=ACTOR
    )
    assert first.pk == again.pk and len(first.code) == 6 and first.code.isdigit()
    assert services.pickup_code_cancel(reference="ORDER1", actor=ACTOR) == 1
    assert PickupCode.objects.get(pk=first.pk).status == PickupCode.Status.CANCELLED


def test_pickup_code_used_at_the_end_of_the_rental():
    compartment = _in(S.OCCUPIED, reference="ORDER1")
    until = timezone.now() + timedelta(hours=2)
    code = services.pickup_code_issue(compartment_id=compartment.pk, reference="ORDER1", valid_until=until, actor=ACTOR)
    assert services.pickup_code_use(reference="ORDER1", actor=ACTOR, reason="picked up") == 1
    assert services.pickup_code_use(reference="ORDER1", actor=ACTOR) == 0  # nothing active any more
    assert PickupCode.objects.get(pk=code.pk).status == PickupCode.Status.USED
    event = LockerEvent.objects.get(action="pickup_code_used")
    assert (event.from_status, event.to_status, event.actor, event.reason) == (
        "active",
        "used",
        "system:test",
        "picked up",
    )


class RecordingDriver:
    """A door driver standing in for the hardware: it notes each call and what the database looked like then."""

    calls: list[dict] = []
    fail = False

    def open(self, *, compartment, reference: str, actor: str) -> None:
        if RecordingDriver.fail:
            raise ConnectionError("cabinet unreachable")
        RecordingDriver.calls.append(
            {
                "compartment": compartment.pk,
                "reference": reference,
                "actor": actor,
                "in_transaction": connection.in_atomic_block,
                "commands": LockerEvent.objects.filter(action=DOOR_OPEN_COMMAND, reference=reference).count(),
                "row_free": run_concurrently(_lock_nowait, args_list=[(compartment.pk,)])[0],
            }
        )


def _lock_nowait(compartment_id: int) -> bool:
    """From another connection: can the compartment row be locked right now?"""
    try:
        with transaction.atomic():
            Compartment.objects.select_for_update(nowait=True).get(pk=compartment_id)
    except OperationalError:
        return False
    return True


@pytest.fixture
def recording_driver(settings):
    settings.LOCKER_DOOR_DRIVER = f"{__name__}.RecordingDriver"
    RecordingDriver.calls, RecordingDriver.fail = [], False
    yield RecordingDriver
    RecordingDriver.calls, RecordingDriver.fail = [], False


def test_door_open_records_the_command_and_sends_it_after_commit(
    recording_driver, celery_eager, django_capture_on_commit_callbacks
):
    compartment = _in(S.OCCUPIED, reference="ORDER1")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        command = services.door_open(
            compartment_id=compartment.pk, reference="ORDER1", actor=Actor("user", "7"), purpose=DoorPurpose.PICKUP
        )
    assert (command.action, command.actor, command.reference) == (DOOR_OPEN_COMMAND, "user:7", "ORDER1")
    assert command.data == {"purpose": "pickup", "label": compartment.label}
    assert len(callbacks) == 1 and recording_driver.calls == []  # nothing reaches the driver before the commit

    callbacks[0]()  # the commit: the task (eager here) hands the command to the driver

    assert [c["reference"] for c in recording_driver.calls] == ["ORDER1"]
    sent = LockerEvent.objects.get(action=DOOR_OPEN_SENT)
    assert sent.data == {"command_id": command.pk, "purpose": "pickup"} and sent.actor == "system:door_driver"


@pytest.mark.django_db(transaction=True)
def test_the_driver_is_called_after_commit_outside_the_row_lock(recording_driver, celery_eager):
    compartment = _in(S.OCCUPIED, reference="ORDER1")

    services.door_open(compartment_id=compartment.pk, reference="ORDER1", actor=ACTOR, purpose=DoorPurpose.DELIVERY)

    [call] = recording_driver.calls
    assert call["in_transaction"] is False and call["row_free"] is True  # no transaction, no row lock held
    assert call["commands"] == 1  # the command was committed before the driver ran


@pytest.mark.parametrize(
    ("status", "reference", "purpose", "code"),
    [
        (S.OCCUPIED, "ORDER2", DoorPurpose.DELIVERY, "door_not_yours"),
        (S.OCCUPIED, "ORDER2", DoorPurpose.PICKUP, "door_not_yours"),
        (S.FREE, "ORDER1", DoorPurpose.PICKUP, "door_not_yours"),
        (S.OCCUPIED, "ORDER1", DoorPurpose.REOPEN, "compartment_taken"),
        (S.RESERVED, "ORDER1", DoorPurpose.REOPEN, "compartment_taken"),
        (S.OCCUPIED, "ORDER1", DoorPurpose.STAFF, "invalid_input"),  # no reason
        (S.OCCUPIED, "ORDER1", "wish", "invalid_input"),
    ],
)
def test_door_open_refusals_write_nothing(status, reference, purpose, code, django_capture_on_commit_callbacks):
    compartment = _in(status)
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(DomainError) as err, transaction.atomic():
        services.door_open(compartment_id=compartment.pk, reference=reference, actor=ACTOR, purpose=purpose)
    assert err.value.code == code
    assert not LockerEvent.objects.filter(action=DOOR_OPEN_COMMAND).exists() and callbacks == []


def test_the_customer_opens_nothing_in_an_offline_cabinet():
    compartment = CompartmentFactory(cabinet=CabinetFactory(is_online=False))
    Compartment.objects.filter(pk=compartment.pk).update(status=S.OCCUPIED, reference="ORDER1")
    with pytest.raises(Conflict) as err, transaction.atomic():
        services.door_open(compartment_id=compartment.pk, reference="ORDER1", actor=ACTOR, purpose="pickup")
    assert err.value.code == "cabinet_offline" and not LockerEvent.objects.filter(action=DOOR_OPEN_COMMAND).exists()
    # the opening after payment is queued all the same (the money is taken; the driver retries)
    services.door_open(compartment_id=compartment.pk, reference="ORDER1", actor=ACTOR, purpose="delivery")


def test_staff_open_any_door_with_a_reason():
    compartment = _in(S.OUT_OF_SERVICE)
    command = services.door_open(
        compartment_id=compartment.pk, reference="", actor=Actor("staff", "3"), purpose="staff", reason="cleaning"
    )
    assert (command.actor, command.reason, command.data["purpose"]) == ("staff:3", "cleaning", "staff")


def test_a_command_is_sent_once(recording_driver):
    compartment = _in(S.OCCUPIED, reference="ORDER1")
    command = services.door_open(compartment_id=compartment.pk, reference="ORDER1", actor=ACTOR, purpose="delivery")
    assert services.door_open_send(command_id=command.pk) is True
    assert services.door_open_send(command_id=command.pk) is False  # the task delivered twice
    assert len(recording_driver.calls) == 1 and LockerEvent.objects.filter(action=DOOR_OPEN_SENT).count() == 1


def test_an_unreachable_cabinet_raises_for_the_task_to_retry(recording_driver):
    compartment = _in(S.OCCUPIED, reference="ORDER1")
    command = services.door_open(compartment_id=compartment.pk, reference="ORDER1", actor=ACTOR, purpose="delivery")
    recording_driver.fail = True
    with pytest.raises(ConnectionError):  # door_open_send_task retries on ConnectionError
        services.door_open_send(command_id=command.pk)
    assert not LockerEvent.objects.filter(action=DOOR_OPEN_SENT).exists()
    recording_driver.fail = False
    assert services.door_open_send(command_id=command.pk) is True


def test_a_stale_command_is_not_sent(recording_driver, settings):
    compartment = _in(S.OCCUPIED, reference="ORDER1")
    command = services.door_open(compartment_id=compartment.pk, reference="ORDER1", actor=ACTOR, purpose="pickup")
    late = command.created_at + settings.LOCKER_DOOR_COMMAND_TTL + timedelta(seconds=1)

    assert services.door_open_send(command_id=command.pk, now=late) is False

    assert recording_driver.calls == []
    expired = LockerEvent.objects.get(action=DOOR_OPEN_EXPIRED)
    assert expired.data == {"command_id": command.pk, "purpose": "pickup"} and "s old" in expired.reason
    assert services.door_open_send(command_id=command.pk) is False  # and never later either


def test_the_simulated_driver_writes_nothing():
    compartment = _in(S.OCCUPIED, reference="ORDER1")
    before = LockerEvent.objects.count()
    SimulatedDoorDriver().open(compartment=compartment, reference="ORDER1", actor="user:1")
    assert LockerEvent.objects.count() == before


def test_door_opened_by_customer_reads_the_purpose_not_the_actor():
    compartment = _in(S.OCCUPIED, reference="ORDER1")
    customer = Actor("user", "1")
    services.door_open(compartment_id=compartment.pk, reference="ORDER1", actor=customer, purpose="delivery")
    services.door_open(compartment_id=compartment.pk, reference="ORDER1", actor=customer, purpose="staff", reason="x")
    assert door_opened_by_customer(reference="ORDER1") is False
    services.door_open(compartment_id=compartment.pk, reference="ORDER1", actor=ACTOR, purpose="pickup")
    assert door_opened_by_customer(reference="ORDER1") is True
    assert door_opened_by_customer(reference="ORDER2") is False


def test_a_queued_message_of_the_previous_version_is_the_opening_after_payment():
    compartment = _in(S.OCCUPIED, reference="ORDER1")
    door_open_task.run(compartment.pk, "ORDER1", "user:5")  # lockers.door_open(compartment_id, reference, actor)
    command = LockerEvent.objects.get(action=DOOR_OPEN_COMMAND)
    assert (command.actor, command.data["purpose"]) == ("user:5", "delivery")
    assert door_opened_by_customer(reference="ORDER1") is False
