"""Server-side pricing: the only place an amount for a locker rental is computed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.errors import Conflict, ValidationFailed
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


HOUR_SECONDS = 3600
DAY_HOURS = 24


@dataclass(frozen=True)
class OvertimeQuote:
    """Overtime of one rental from ``overdue_seconds`` past its paid end: ``billed_hours`` started hours, of
    which ``days`` started 24-hour days, each capped at ``daily_cap_fen``. Amounts in fen."""

    size: str
    overdue_seconds: int
    billed_hours: int
    days: int
    per_hour_fen: int
    daily_cap_fen: int
    amount_fen: int

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def overtime_compute(*, per_hour_fen: int, daily_cap_fen: int, overdue_seconds: int) -> tuple[int, int, int]:
    """Return (billed_hours, days, amount_fen) for ``overdue_seconds`` past the paid end.

    Every started hour is billed at ``per_hour_fen``; the hours of each 24-hour day (counted from the paid end)
    cost at most ``daily_cap_fen``. Nothing overdue costs nothing: (0, 0, 0). So the amount is never negative,
    never more than ``daily_cap_fen`` times the started days, and never more than ``per_hour_fen`` times the
    started hours.
    """
    if per_hour_fen <= 0 or daily_cap_fen <= 0:
        raise ValueError("overtime prices must be positive")
    if overdue_seconds <= 0:
        return 0, 0, 0
    hours = -(-overdue_seconds // HOUR_SECONDS)  # started hours
    full_days, rest = divmod(hours, DAY_HOURS)
    full_day_fen = min(DAY_HOURS * per_hour_fen, daily_cap_fen)
    amount = full_days * full_day_fen + min(rest * per_hour_fen, daily_cap_fen)
    return hours, full_days + (1 if rest else 0), amount


def overtime_quote(*, size: str, overdue_seconds: int) -> OvertimeQuote:
    """The overtime of a rental of this size, from its price plan (active or not: the rental was priced from
    it). Plan fields empty: the plan's price per hour, and its cap per rental as the daily cap."""
    plan = PricePlan.objects.filter(size=size).first()
    if plan is None:
        raise Conflict(f"No price plan for size {size}.", code="no_price_plan", details={"size": size})
    per_hour = plan.overtime_per_hour_fen or plan.price_per_hour_fen
    daily_cap = plan.overtime_daily_cap_fen or plan.cap_fen
    hours, days, amount = overtime_compute(
        per_hour_fen=per_hour, daily_cap_fen=daily_cap, overdue_seconds=overdue_seconds
    )
    return OvertimeQuote(size, max(overdue_seconds, 0), hours, days, per_hour, daily_cap, amount)


def overtime_since(*, size: str, rental_ends_at: datetime, at: datetime) -> OvertimeQuote:
    """The overtime of a rental whose paid time ended at ``rental_ends_at``, up to ``at`` (``overtime_quote`` of
    the seconds between: every started hour, a daily cap per plan; nothing before the end). The one rule the
    cashier's overtime order (``orders.overtime``) and a Pay Score rental's final amount (``price_after_use``)
    both price overtime with."""
    return overtime_quote(size=size, overdue_seconds=int((at - rental_ends_at).total_seconds()))


@dataclass(frozen=True)
class AfterUseQuote:
    """The final amount of a rental paid after use (WeChat Pay Score). Amounts in fen, hours started hours."""

    size: str
    hours: int  # started hours used, at least one
    paid_hours: int  # the hours the rental was booked for (its paid time)
    rental_hours: int  # hours billed for the paid time (the plan's minimum included)
    rental_fen: int
    overtime_hours: int
    overtime_fen: int
    billed_hours: int  # rental_hours + overtime_hours: what the service order's line item names
    max_fen: int | None
    amount_fen: int

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def price_after_use(
    *, size: str, started_at: datetime, ended_at: datetime, paid_hours: int, grace: timedelta, max_fen: int | None
) -> AfterUseQuote:
    """What a rental started at ``started_at`` for ``paid_hours`` hours and ended at ``ended_at`` costs when it is
    paid after use: the time used within its paid time, every started hour (at least one) priced by the size's
    active plan (``price_compute``: its minimum hours and cap, never more than the paid time's price), plus the
    overtime the cashier would ask at ``ended_at`` (nothing up to ``grace`` after the paid end, the pickup
    code's validity; then ``overtime_since`` the paid end), never more than ``max_fen`` (the service order's
    risk fund; None: no limit). So a customer paying after use pays what one paying up front for the same
    booking and the same pickup would (less when they come back early), within the risk fund.
    Raises 409 ``no_price_plan``."""
    plan = PricePlan.objects.filter(size=size, is_active=True).first()
    if plan is None:
        raise Conflict(f"No active price plan for size {size}.", code="no_price_plan", details={"size": size})
    seconds = max(0.0, (ended_at - started_at).total_seconds())
    hours = max(1, math.ceil(seconds / HOUR_SECONDS))
    rental_hours, rental_fen = price_compute(
        price_per_hour_fen=plan.price_per_hour_fen,
        min_hours=plan.min_hours,
        cap_fen=plan.cap_fen,
        hours=min(hours, paid_hours),
    )
    rental_ends_at = started_at + timedelta(hours=paid_hours)
    overtime_hours = overtime_fen = 0
    if ended_at > rental_ends_at + grace:
        overtime = overtime_since(size=size, rental_ends_at=rental_ends_at, at=ended_at)
        overtime_hours, overtime_fen = overtime.billed_hours, overtime.amount_fen
    total = rental_fen + overtime_fen
    return AfterUseQuote(
        size=size,
        hours=hours,
        paid_hours=paid_hours,
        rental_hours=rental_hours,
        rental_fen=rental_fen,
        overtime_hours=overtime_hours,
        overtime_fen=overtime_fen,
        billed_hours=rental_hours + overtime_hours,
        max_fen=max_fen,
        amount_fen=total if max_fen is None else min(total, max_fen),
    )
