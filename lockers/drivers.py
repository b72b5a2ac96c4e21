"""Door drivers: how an "open door" command reaches a cabinet.

The real hardware integration implements ``DoorDriver``. ``lockers.services.door_open`` records each
command (a ``LockerEvent`` with its purpose and actor) in the requesting transaction; after commit the
``lockers.door_open_send`` task hands it to the driver, outside any row lock, and records
``door_open_sent``. A driver only carries commands out: it writes nothing, and nothing depends on which
one is installed.
"""

from __future__ import annotations

import logging
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from lockers.models import Compartment

logger = logging.getLogger(__name__)


class DoorDriver(Protocol):
    def open(self, *, compartment: Compartment, reference: str, actor: str) -> None:
        """Open the door now. Raise ``ConnectionError`` when the cabinet cannot be reached (the task retries)."""


class SimulatedDoorDriver:
    """No hardware: the door "opens" in the log."""

    def open(self, *, compartment: Compartment, reference: str, actor: str) -> None:
        logger.info("door of %s-%s opens for %s (%s)", compartment.cabinet.code, compartment.label, reference, actor)


def get_door_driver() -> DoorDriver:
    return import_string(settings.LOCKER_DOOR_DRIVER)()
