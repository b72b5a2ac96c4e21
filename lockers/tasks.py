"""Door commands leave here, after the transaction that recorded them has committed."""

from celery import shared_task

from core.audit import Actor
from lockers.models import DoorPurpose
from lockers.services import door_open, door_open_send


@shared_task(
    name="lockers.door_open_send", acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5
)
def door_open_send_task(command_id: int) -> None:
    door_open_send(command_id=command_id)


@shared_task(name="lockers.door_open", acks_late=True)
def door_open_task(compartment_id: int, reference: str, actor: str) -> None:
    """Messages queued by the version before door commands were recorded: the opening after payment."""
    kind, _, ident = actor.partition(":")
    door_open(
        compartment_id=compartment_id, reference=reference, actor=Actor(kind, ident), purpose=DoorPurpose.DELIVERY
    )
