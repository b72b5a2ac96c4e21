"""Door drivers: how an "open door" command reaches a cabinet.

The real hardware integration implements ``DoorDriver``; the simulated driver records each
command as a ``LockerEvent`` so the flow can be seen and tested end to end.
"""

from __future__ import annotations

from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from lockers.models import Compartment, LockerEvent


class DoorDriver(Protocol):
    def open(self, *, compartment: Compartment, reference: str, actor: str) -> None: ...


class SimulatedDoorDriver:
    def open(self, *, compartment: Compartment, reference: str, actor: str) -> None:
        LockerEvent.objects.create(
            compartment=compartment,
            action="door_open_command",
            actor=actor,
            reference=reference,
            data={"cabinet": compartment.cabinet.code, "label": compartment.label},
        )


def get_door_driver() -> DoorDriver:
    return import_string(settings.LOCKER_DOOR_DRIVER)()
