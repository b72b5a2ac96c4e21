"""Server-side pricing: the only place an amount for a locker rental is computed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from config.errors import Conflict, ValidationFailed
from lockers.models import PricePlan


@dataclass(frozen=True)
class Quote:
    size: str
    hours: int
    billed_hours: int
    price_per_hour_fen: int
    cap_fen: int
    amount_fen: int

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def price_compute(*, price_per_hour_fen: int, min_hours: int, cap_fen: int, hours: int) -> tuple[int, int]:
    """Return (billed_hours, amount_fen): at least ``min_hours`` are billed, never more than the cap."""
    if hours < 1:
        raise ValidationFailed("hours must be at least 1.", details={"hours": hours})
    billed = max(hours, min_hours)
    return billed, min(billed * price_per_hour_fen, cap_fen)


def price_quote(*, size: str, hours: int, max_hours: int) -> Quote:
    if not 1 <= hours <= max_hours:
        raise ValidationFailed(f"hours must be between 1 and {max_hours}.", details={"hours": hours})
    plan = PricePlan.objects.filter(size=size, is_active=True).first()
    if plan is None:
        raise Conflict(f"No active price plan for size {size}.", code="no_price_plan", details={"size": size})
    billed, amount = price_compute(
        price_per_hour_fen=plan.price_per_hour_fen, min_hours=plan.min_hours, cap_fen=plan.cap_fen, hours=hours
    )
    return Quote(size, hours, billed, plan.price_per_hour_fen, plan.cap_fen, amount)


def price_after_use(*, size: str, started_at: datetime, ended_at: datetime, max_fen: int) -> Quote:
    """The final amount of a rental paid after use (WeChat Pay Score): every started hour from ``started_at``
    to ``ended_at`` (at least one) priced by the size's active plan (``price_compute``: its minimum hours and
    cap), and never more than ``max_fen`` (the service order's risk fund). The one call to point at another
    rule (overtime per started hour with a daily cap) when that lands."""
    seconds = max(0.0, (ended_at - started_at).total_seconds())
    hours = max(1, math.ceil(seconds / 3600))
    plan = PricePlan.objects.filter(size=size, is_active=True).first()
    if plan is None:
        raise Conflict(f"No active price plan for size {size}.", code="no_price_plan", details={"size": size})
    billed, amount = price_compute(
        price_per_hour_fen=plan.price_per_hour_fen, min_hours=plan.min_hours, cap_fen=plan.cap_fen, hours=hours
    )
    return Quote(size, hours, billed, plan.price_per_hour_fen, plan.cap_fen, min(amount, max_fen))
