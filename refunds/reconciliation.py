"""Reconciliation of refunds: tiered polling of processing refunds, resubmission of approved
refunds whose task was lost, re-sending of refunds the gateway does not know (after
``REFUND_RESEND_GRACE_SECONDS``), alerts on old ones, and automatic refunds of late / double payments.

Same batch discipline as payments.reconciliation: claim with ``select_for_update(skip_locked)``,
stamp a lease, do gateway I/O outside the transaction, walk forward by id within a job.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet

from core.audit import Actor
from core.errors import DomainError, GatewayUnavailable
from core.logging import log_context
from payments.models import Payment
from payments.reconciliation import MINUTE, claim_batch, due_by_tier, not_synced_since, run_until_done, scaled
from refunds.models import Refund
from refunds.services import refund_needs_resend, refund_request, refund_resubmit, refund_submit, refund_sync

logger = logging.getLogger(__name__)
RECONCILE = Actor.system("reconcile")
Status = Refund.Status


def refunds_due(now: datetime) -> QuerySet[Refund]:
    wait = scaled(5 * MINUTE)
    lost = Q(status=Status.APPROVED, decided_at__lte=now - wait) & not_synced_since(now - wait)
    return Refund.objects.filter(Q(status=Status.PROCESSING) & due_by_tier("submitted_at", now) | lost)


def reconcile_refunds_batch(*, now: datetime, size: int = 100, after_id: int = 0) -> list[int]:
    """One batch of due refunds with an id above ``after_id``; returns their ids (in order)."""
    ids = claim_batch(refunds_due(now), now=now, size=size, after_id=after_id)
    for refund in Refund.objects.filter(id__in=ids).order_by("id"):
        with log_context(refund_no=refund.refund_no):
            _reconcile_refund(refund, now=now)
    return ids


def _reconcile_refund(refund: Refund, *, now: datetime) -> None:
    try:
        if refund.status == Status.APPROVED:
            refund_submit(refund_id=refund.pk, now=now)  # its task was lost: submit (idempotent at the gateway)
            return
        refund = refund_sync(refund_id=refund.pk, actor=RECONCILE, now=now)
        if refund_needs_resend(refund, now=now):  # the gateway still does not know it: send it again
            logger.warning(
                "refund %s unknown at the gateway since %s: sent again", refund.refund_no, refund.gateway_unknown_since
            )
            refund_resubmit(refund_id=refund.pk, actor=RECONCILE, now=now, note="unknown at the gateway")
    except GatewayUnavailable as exc:
        logger.warning("reconcile refund %s: gateway unavailable (%s)", refund.refund_no, exc)
    except DomainError as exc:
        logger.warning("reconcile refund %s: %s", refund.refund_no, exc.message)


def refunds_stuck(now: datetime) -> QuerySet[Refund]:
    """Refunds in flight for longer than REFUND_STUCK_ALERT_HOURS (shown on the dashboard)."""
    limit = now - timedelta(hours=settings.REFUND_STUCK_ALERT_HOURS)
    return Refund.objects.filter(
        Q(status__in=(Status.PROCESSING, Status.ABNORMAL), submitted_at__lte=limit)
        | Q(status=Status.APPROVED, decided_at__lte=limit)
    )


def flagged_payments_unrefunded() -> QuerySet[Payment]:
    """Late / double payments the system has not refunded yet. One automatic refund per payment:
    if it fails, finance sees it (failed refunds on the dashboard) instead of a retry loop."""
    return (
        Payment.objects.filter(status=Payment.Status.SUCCEEDED)
        .exclude(flag="")
        .exclude(refunds__source=Refund.Source.SYSTEM)
        .exclude(refunds__status__in=Refund.COUNTING)
    )


def refund_flagged_payments_batch(*, size: int = 100, payment_id: int | None = None) -> int:
    """Money for an order that no longer wanted it (late after closing, or a second payment) is
    refunded in full by the system: requested and approved automatically, audited as such.
    ``payment_id``: only that payment (the task sent when it was flagged). Returns how many were refunded."""
    unrefunded = flagged_payments_unrefunded()
    if payment_id is not None:
        unrefunded = unrefunded.filter(pk=payment_id)
    with transaction.atomic():
        payments = list(
            unrefunded.select_for_update(skip_locked=True, of=("self",)).select_related("order").order_by("id")[:size]
        )
        for payment in payments:
            refund_request(
                order_no=payment.order.order_no,
                payment_no=payment.payment_no,
                amount_fen=None,
                reason=f"automatic refund: {payment.flag}",
                requested_by=None,
                source=Refund.Source.SYSTEM,
            )
            logger.warning("payment %s (%s) refunded automatically", payment.payment_no, payment.flag)
    return len(payments)


def reconcile_refunds(*, now: datetime, size: int = 100, max_batches: int = 1000, progress=None) -> dict[str, int]:
    flagged = run_until_done(lambda: refund_flagged_payments_batch(size=size), max_batches=max_batches)
    cursor = [0]  # the last id claimed: each batch starts after it (payments.reconciliation)

    def one_batch() -> int:
        ids = reconcile_refunds_batch(now=now, size=size, after_id=cursor[0])
        cursor[0] = ids[-1] if ids else cursor[0]
        return len(ids)

    polled = run_until_done(one_batch, max_batches=max_batches, progress=progress)
    stuck = list(refunds_stuck(now).values_list("refund_no", flat=True)[:50])
    for refund_no in stuck:
        logger.error("refund %s is stuck for more than %sh: check it", refund_no, settings.REFUND_STUCK_ALERT_HOURS)
    return {"refunds": polled, "flagged_refunded": flagged, "stuck": len(stuck)}
