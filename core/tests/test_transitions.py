"""core.transitions: the one way a row changes state (checked against its model's TRANSITIONS, saved,
audited by its AUDIT event model), one row at a time and in bulk. Real models, real PostgreSQL."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.audit import Actor
from core.errors import InvalidTransition
from core.transitions import event, transition, transition_many, transitions_audit
from finance.models import BillDiscrepancy, BillDiscrepancyEvent
from finance.tests.factories import BillDiscrepancyFactory
from lockers.models import Compartment, LockerEvent, PickupCode
from lockers.tests.factories import CompartmentFactory

pytestmark = pytest.mark.django_db

Status = Compartment.Status
DStatus = BillDiscrepancy.Status
STAFF = Actor("staff", "7")


def test_a_transition_saves_and_writes_its_event_in_two_statements():
    compartment = CompartmentFactory()

    with CaptureQueriesContext(connection) as queries:
        written = transition(
            compartment, to=Status.OUT_OF_SERVICE, actor=STAFF, action="out_of_service", reason="door jammed"
        )

    assert len(queries) == 2
    compartment.refresh_from_db()
    assert compartment.status == Status.OUT_OF_SERVICE
    assert written == LockerEvent.objects.get(compartment=compartment)
    assert (written.from_status, written.to_status, written.actor, written.reason) == (
        "free",
        "out_of_service",
        "staff:7",
        "door jammed",
    )


def test_a_move_the_table_does_not_allow_writes_nothing():
    compartment = CompartmentFactory()

    with pytest.raises(InvalidTransition) as refused:
        transition(compartment, to=Status.OCCUPIED, actor=STAFF, action="occupy", reference="LK1")

    assert refused.value.details == {"entity": "compartment", "current": "free", "target": "occupied"}
    assert Compartment.objects.get(pk=compartment.pk).status == Status.FREE
    assert not LockerEvent.objects.exists()


def test_every_status_of_an_audited_model_has_a_row_in_its_table():
    for model in (Compartment, PickupCode, BillDiscrepancy):
        assert set(model.TRANSITIONS) == set(model.Status.values), model
        assert all(set(targets) <= set(model.Status.values) for targets in model.TRANSITIONS.values()), model


def test_a_pickup_codes_events_are_its_compartments():
    compartment = CompartmentFactory(status=Status.OCCUPIED, reference="LK2")
    code = PickupCode.objects.create(
        compartment=compartment, reference="LK2", code="123456", valid_until=timezone.now() + dt.timedelta(hours=1)
    )

    transition(
        code, to=PickupCode.Status.USED, actor=STAFF, action="pickup_code_used", update_fields=[], reference="LK2"
    )

    code.refresh_from_db()
    assert code.status == PickupCode.Status.USED
    [written] = LockerEvent.objects.filter(compartment=compartment)
    assert (written.action, written.from_status, written.to_status, written.reference) == (
        "pickup_code_used",
        "active",
        "used",
        "LK2",
    )
    with pytest.raises(InvalidTransition):
        transition(code, to=PickupCode.Status.CANCELLED, actor=STAFF, action="pickup_code_cancelled", update_fields=[])


def test_an_event_without_a_move_keeps_the_status():
    d = BillDiscrepancyFactory()

    written = event(d, action="auto_repair_attempt", actor=STAFF, reason="x" * 300, data={"n": 1})

    assert (written.from_status, written.to_status, written.discrepancy_id) == ("open", "open", d.pk)
    assert len(written.reason) == 255 and written.data == {"n": 1}


def test_a_bulk_move_is_one_update_and_one_insert_and_audits_every_row():
    rows = [BillDiscrepancyFactory(status=s) for s in (DStatus.OPEN, DStatus.ASSIGNED, DStatus.HELD)]

    with CaptureQueriesContext(connection) as queries:
        moved = transition_many(
            BillDiscrepancy,
            [(d.pk, d.status) for d in rows],
            to=DStatus.RESOLVED,
            actor=Actor.system("bills"),
            action="reconcile",
            reason="no longer found",
            values={"resolution_note": "no longer found"},
        )

    assert moved == 3 and len(queries) == 2
    assert set(BillDiscrepancy.objects.values_list("status", "resolution_note")) == {("resolved", "no longer found")}
    assert sorted(BillDiscrepancyEvent.objects.values_list("from_status", "to_status", "actor")) == [
        ("assigned", "resolved", "system:bills"),
        ("held", "resolved", "system:bills"),
        ("open", "resolved", "system:bills"),
    ]


def test_a_bulk_move_with_one_forbidden_row_writes_nothing():
    ok, resolved = BillDiscrepancyFactory(status=DStatus.HELD), BillDiscrepancyFactory(status=DStatus.RESOLVED)

    with pytest.raises(InvalidTransition):
        transition_many(
            BillDiscrepancy,
            [(ok.pk, ok.status), (resolved.pk, resolved.status)],
            to=DStatus.ASSIGNED,
            actor=STAFF,
            action="assign",
        )
    with pytest.raises(InvalidTransition):
        transitions_audit(BillDiscrepancy, [(resolved.pk, DStatus.RESOLVED, DStatus.ASSIGNED)], actor=STAFF, action="x")

    assert BillDiscrepancy.objects.get(pk=ok.pk).status == DStatus.HELD
    assert not BillDiscrepancyEvent.objects.exists()


def test_a_bulk_audit_refuses_a_model_whose_events_name_another_row():
    with pytest.raises(TypeError):
        transitions_audit(PickupCode, [(1, "active", "used")], actor=STAFF, action="pickup_code_used")
    assert not LockerEvent.objects.exists()
