"""The one way a row changes state: checked against its model's table of allowed transitions, saved,
and audited by an event row in the same transaction.

A model that changes state declares

- ``TRANSITIONS``: ``{status: {statuses it may move to}}`` (a status missing from the table moves nowhere);
- ``AUDIT = ("app_label.EventModel", "field")``: its audit event model (a ``core.audit.AuditEvent``) and
  the event's field that names the row: ``"payment"`` gets the row itself; a name ending in ``_id``
  (``"compartment_id"`` for a pickup code, whose events are its compartment's) gets that attribute of
  the row.

Callers lock the row first (``select_for_update``) inside their transaction; these functions take no
lock of their own and do no gateway I/O. Statements: ``transition`` is one save and one insert;
``transition_many`` is one update and one insert whatever the number of rows; ``transitions_audit``
audits rows a job saved in bulk itself (one insert).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.apps import apps
from django.db import models
from django.utils.text import capfirst

from core.audit import Actor, AuditEvent, save_with_event
from core.errors import InvalidTransition, NotFound


def _audit(model: type[models.Model]) -> tuple[type[AuditEvent], str]:
    label, field = model.AUDIT
    return apps.get_model(label), field


def _subject(field: str, obj: models.Model) -> dict[str, Any]:
    return {field: getattr(obj, field) if field.endswith("_id") else obj}


def _entity(model: type[models.Model]) -> str:
    return str(model._meta.verbose_name)


def locked(model: type[models.Model], **lookup: Any) -> Any:
    """The row of ``model`` matching ``lookup`` (one unique field, e.g. ``payment_no=...``), locked
    (``select_for_update``) for the caller's transaction; ``NotFound`` (404, ``details`` = the lookup)
    when there is none. One statement."""
    row = model.objects.select_for_update().filter(**lookup).first()
    if row is None:
        raise NotFound(f"{capfirst(model._meta.verbose_name)} not found.", details=lookup)
    return row


def check_transition(model: type[models.Model], before: str, to: str) -> None:
    """Raise ``InvalidTransition`` (409 ``invalid_transition``) unless ``model.TRANSITIONS`` allows it."""
    if to not in model.TRANSITIONS.get(before, ()):
        raise InvalidTransition(_entity(model), before, to)


def event(
    obj: models.Model,
    *,
    action: str,
    actor: Actor | str,
    reason: str = "",
    data: Mapping[str, Any] | None = None,
    before: str | None = None,
    status_field: str = "status",
    **fields: Any,
) -> AuditEvent:
    """Write the audit event of ``obj`` (``from_status`` ``before``, default its current status; ``to_status``
    its current status): an audited step that need not change the status. ``fields`` are the event
    model's own extra columns (a locker event's ``reference``). ``reason`` is cut to the column's 255."""
    event_model, field = _audit(type(obj))
    now_status = getattr(obj, status_field)
    return event_model.objects.create(
        **_subject(field, obj),
        action=action,
        from_status=now_status if before is None else before,
        to_status=now_status,
        actor=str(actor),
        reason=reason[:255],
        data=dict(data or {}),
        **fields,
    )


def transition(
    obj: models.Model,
    *,
    to: str,
    actor: Actor | str,
    action: str,
    reason: str = "",
    data: Mapping[str, Any] | None = None,
    update_fields: Iterable[str] | None = None,
    one_statement: Iterable[str] | None = None,
    status_field: str = "status",
    **fields: Any,
) -> AuditEvent | None:
    """Move ``obj`` (locked by the caller) to ``to``: check ``TRANSITIONS`` (``InvalidTransition`` before
    anything is written), save (every field, or ``update_fields`` plus the status), write the event.
    Returns the event. ``one_statement``: the only other fields the caller changed; the row and its event
    are then written in ONE statement (``core.audit.save_with_event``, the hot path of every paid
    notification) and None is returned."""
    before = getattr(obj, status_field)
    check_transition(type(obj), before, to)
    setattr(obj, status_field, to)
    if one_statement is not None:
        event_model, _ = _audit(type(obj))
        save_with_event(
            obj,
            fields=(status_field, *one_statement),
            event_model=event_model,
            action=action,
            actor=actor,
            before=before,
            reason=reason,
            data=dict(data or {}),
        )
        return None
    obj.save(update_fields=None if update_fields is None else [status_field, *update_fields])
    return event(obj, action=action, actor=actor, reason=reason, data=data, before=before, **fields)


def transitions_audit(
    model: type[models.Model],
    changes: Iterable[tuple[int, str, str]],
    *,
    actor: Actor | str,
    action: str,
    reason: str = "",
) -> int:
    """Check and audit changes of many rows a job saves in bulk itself (``bulk_update``): ``changes`` are
    ``(pk, from status, to status)``; raises ``InvalidTransition`` before writing, then one INSERT of an
    event per change. Returns how many."""
    changes = list(changes)
    for _, before, to in changes:
        check_transition(model, before, to)
    if not changes:
        return 0
    event_model, field = _audit(model)
    if field.endswith("_id"):  # the event names another row (a pickup code's compartment): not by this pk
        raise TypeError(f"{model.__name__}'s events do not name it by its id: audit them one at a time")
    event_model.objects.bulk_create(
        event_model(
            **{f"{field}_id": pk},
            action=action,
            from_status=before,
            to_status=to,
            actor=str(actor),
            reason=reason[:255],
        )
        for pk, before, to in changes
    )
    return len(changes)


def transition_many(
    model: type[models.Model],
    rows: Iterable[tuple[int, str]],
    *,
    to: str,
    actor: Actor | str,
    action: str,
    reason: str = "",
    values: Mapping[str, Any] | None = None,
) -> int:
    """Move many rows of ``model`` at once (a job's bulk change): ``rows`` are ``(pk, current status)`` pairs
    the caller read under ``select_for_update``; each transition is checked (``InvalidTransition`` before
    anything is written), then one UPDATE sets ``status`` (and ``values``) and one INSERT writes an event
    for each row. Returns how many rows moved."""
    rows = list(rows)
    if not rows:
        return 0
    for _, before in rows:
        check_transition(model, before, to)
    model.objects.filter(pk__in=[pk for pk, _ in rows]).update(status=to, **dict(values or {}))
    return transitions_audit(
        model, [(pk, before, to) for pk, before in rows], actor=actor, action=action, reason=reason
    )
