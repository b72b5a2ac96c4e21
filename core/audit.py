"""Audit trail shared by every state machine.

Each app keeps its own event table (so ``lockers`` and ``wallets`` import no other app) built
on this abstract base: who or what acted, the transition, when, and why. Events are written
by the transition functions in the same transaction as the change they describe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db import models


@dataclass(frozen=True)
class Actor:
    """Who or what caused a change: ``user:12``, ``staff:3``, ``gateway:wechat``, ``system:expiry``."""

    kind: str
    ident: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.ident}"

    @classmethod
    def user(cls, user) -> Actor:
        return cls("staff" if getattr(user, "is_staff", False) else "user", str(user.pk))

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls("system", name)

    @classmethod
    def gateway(cls, name: str) -> Actor:
        return cls("gateway", name)


class AuditEvent(models.Model):
    action = models.CharField(max_length=64)
    from_status = models.CharField(max_length=32, blank=True)
    to_status = models.CharField(max_length=32, blank=True)
    actor = models.CharField(max_length=80)
    reason = models.CharField(max_length=255, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        abstract = True
        ordering = ("id",)

    def __str__(self) -> str:
        change = f" {self.from_status}->{self.to_status}" if self.to_status else ""
        return f"{self.action}{change} by {self.actor}"


def save_with_event(
    instance: models.Model,
    *,
    fields: tuple[str, ...],
    event_model: type[AuditEvent],
    action: str,
    actor: Actor,
    before: str,
    reason: str = "",
    data: dict | None = None,
) -> None:
    """Write ``fields`` of ``instance`` (a row its caller has locked, its new values set on it) and append its
    audit event (``event_model``, whose foreign key points at the instance's model) in ONE statement: a
    transition on a hot path (every paid notification) without the ORM's two. ``to_status`` is the
    instance's ``status``; ``updated_at`` (when the model has it) moves to now, and is the event's ``created_at``.
    Raises ``DatabaseError`` if the row is gone (its caller held the lock: it cannot be)."""
    from django.db import DatabaseError, connection
    from django.utils import timezone

    from core.db import prepared_cursor

    meta = instance._meta
    if any(f.name == "updated_at" for f in meta.concrete_fields) and "updated_at" not in fields:
        instance.updated_at = timezone.now()  # what save() does for auto_now
        fields = (*fields, "updated_at")
    columns = [meta.get_field(name) for name in fields]
    link = next(f for f in event_model._meta.concrete_fields if f.is_relation and f.related_model is type(instance))
    quote = connection.ops.quote_name
    now = getattr(instance, "updated_at", None) or timezone.now()
    # only identifiers from the models' meta, quoted, are formatted in; every value is a parameter
    table, pk, events = quote(meta.db_table), quote(meta.pk.column), quote(event_model._meta.db_table)
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in columns)
    sql = (
        f"WITH moved AS (UPDATE {table} SET {assignments} WHERE {pk} = %s RETURNING {pk})"  # noqa: S608
        f" INSERT INTO {events} ({quote(link.column)}, action, from_status, to_status, actor, reason, data, created_at)"
        f" SELECT {pk}, %s, %s, %s, %s, %s, %s::jsonb, %s FROM moved"
    )
    params = [f.get_db_prep_save(getattr(instance, f.attname), connection) for f in columns]
    params += [instance.pk, action, before, instance.status, str(actor), reason[:255], json.dumps(data or {}), now]
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount != 1:
            raise DatabaseError(f"{meta.label} {instance.pk}: the {action} transition wrote {cursor.rowcount} events")
