"""Idempotency-Key handling for POST /payments/, enforced by a unique (user, key) row."""

from __future__ import annotations

import hashlib
import json
import re

from django.db import IntegrityError, transaction

from core.errors import Conflict, ValidationFailed
from payments.models import IdempotencyRecord

# visible ASCII, spaces inside only (HTTP strips them at the ends): the OpenAPI document says the same
KEY_FORMAT = re.compile(r"[!-~]([ -~]*[!-~])?")


def request_fingerprint(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def idempotency_begin(*, user, key: str, fingerprint: str) -> tuple[IdempotencyRecord, bool]:
    """Claim ``key`` for this request. Returns (record, replay): replay=True means answer from the record."""
    if len(key) > 128 or not KEY_FORMAT.fullmatch(key):
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 128 visible ASCII characters.", details={"Idempotency-Key": ["Invalid."]}
        )
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(user=user, key=key, request_hash=fingerprint), False
    except IntegrityError:
        record = IdempotencyRecord.objects.get(user=user, key=key)
    if record.request_hash != fingerprint:
        raise Conflict("This Idempotency-Key was used with another request body.", code="idempotency_key_reused")
    if record.response_status is None:
        raise Conflict("A request with this Idempotency-Key is still in progress.", code="idempotency_in_progress")
    return record, True


def idempotency_finish(record: IdempotencyRecord, *, status: int, body: dict) -> None:
    record.response_status = status
    record.response_body = body
    record.save(update_fields=["response_status", "response_body"])


def idempotency_forget(record: IdempotencyRecord) -> None:
    """A retryable failure (gateway unavailable) is not remembered: the same key may try again."""
    record.delete()
