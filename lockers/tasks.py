from celery import shared_task

from config.audit import Actor
from lockers.services import door_open


@shared_task(
    name="lockers.door_open", acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5
)
def door_open_task(compartment_id: int, reference: str, actor: str) -> None:
    kind, _, ident = actor.partition(":")
    door_open(compartment_id=compartment_id, reference=reference, actor=Actor(kind, ident))
