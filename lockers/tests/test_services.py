from datetime import timedelta

import pytest
from django.utils import timezone

from config.audit import Actor
from config.errors import Conflict, InvalidTransition
from lockers import services
from lockers.models import Compartment, LockerEvent, PickupCode
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
        with pytest.raises((Conflict, InvalidTransition)):
            _call(name, compartment)
        compartment.refresh_from_db()
        assert compartment.status == start
        assert LockerEvent.objects.count() == events_before


def test_occupy_needs_the_reserving_order():
    compartment = _in(S.RESERVED, reference="OTHER")
    with pytest.raises(InvalidTransition):
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


def test_simulated_driver_records_the_open_door_command():
    compartment = _in(S.OCCUPIED, reference="ORDER1")
    services.door_open(compartment_id=compartment.pk, reference="ORDER1", actor=ACTOR)
    event = LockerEvent.objects.get(action="door_open_command")
    assert event.reference == "ORDER1" and event.data["label"] == compartment.label


def test_door_does_not_open_for_another_order():
    compartment = _in(S.OCCUPIED, reference="ORDER1")
    with pytest.raises(Conflict):
        services.door_open(compartment_id=compartment.pk, reference="ORDER2", actor=ACTOR)
    assert not LockerEvent.objects.filter(action="door_open_command").exists()
