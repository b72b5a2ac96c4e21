"""The final amount of a rental paid after use (``price_after_use``) is the one pricing rule the cashier uses:
the paid time's price plus the overtime the cashier would ask at the pickup, within the risk fund."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import Conflict
from lockers.models import Compartment, PricePlan
from lockers.pricing import price_after_use, price_compute
from lockers.tests.factories import PricePlanFactory
from orders.models import Order
from orders.overtime import _priced

START = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
PLAN = {"price_per_hour_fen": 500, "min_hours": 2, "cap_fen": 5_000}


def cashier_overtime_fen(*, paid_hours: int, ended_at: datetime, grace: timedelta) -> int:
    """What the cashier (``orders.overtime``) asks a rental paid up front for ``paid_hours`` from ``START`` when
    its customer comes at ``ended_at``: nothing while the pickup code is valid (paid end + ``grace``)."""
    rental_ends_at = START + timedelta(hours=paid_hours)
    if ended_at <= rental_ends_at + grace:
        return 0
    rental = Order(compartment=Compartment(size="M"), rental_ends_at=rental_ends_at, order_no="R1")
    try:
        return _priced(rental, now=ended_at)[0]
    except Conflict as exc:  # not overdue
        assert exc.code == "not_overdue"
        return 0


@pytest.mark.django_db
@settings(max_examples=80, deadline=None)
@given(
    seconds=st.integers(min_value=0, max_value=5 * 24 * 3600),
    more=st.integers(min_value=1, max_value=2 * 24 * 3600),
    paid_hours=st.integers(min_value=1, max_value=72),
    grace=st.integers(min_value=0, max_value=3 * 3600),
    max_fen=st.one_of(st.none(), st.integers(min_value=1, max_value=60_000)),
    overtime=st.sampled_from([(None, None), (300, 2_000), (800, 12_000)]),
)
def test_the_final_amount_is_the_paid_time_plus_the_cashiers_overtime_within_the_risk_fund(
    seconds, more, paid_hours, grace, max_fen, overtime
):
    PricePlan.objects.update_or_create(  # examples share the test's transaction: set the plan each time
        size="M", defaults={**PLAN, "overtime_per_hour_fen": overtime[0], "overtime_daily_cap_fen": overtime[1]}
    )
    grace_td = timedelta(seconds=grace)
    ended_at = START + timedelta(seconds=seconds)

    quote = price_after_use(
        size="M", started_at=START, ended_at=ended_at, paid_hours=paid_hours, grace=grace_td, max_fen=max_fen
    )

    used_hours = max(1, -(-seconds // 3600))  # every started hour, at least one
    paid_time_fen = price_compute(**PLAN, hours=min(used_hours, paid_hours))[1]
    expected = paid_time_fen + cashier_overtime_fen(paid_hours=paid_hours, ended_at=ended_at, grace=grace_td)
    assert quote.amount_fen == (expected if max_fen is None else min(expected, max_fen))
    assert quote.rental_fen <= price_compute(**PLAN, hours=paid_hours)[1]  # never more than paying up front
    later = price_after_use(
        size="M",
        started_at=START,
        ended_at=ended_at + timedelta(seconds=more),
        paid_hours=paid_hours,
        grace=grace_td,
        max_fen=max_fen,
    )
    assert 0 < quote.amount_fen <= later.amount_fen  # never less for staying longer


@pytest.mark.django_db
def test_a_day_past_the_paid_time_is_billed_with_the_daily_cap_not_the_rental_cap():
    # the reported input: 2 h booked, picked up 26 h later; the plan's cap per rental (50.00) no longer caps it
    PricePlanFactory(size="M", **PLAN, overtime_per_hour_fen=500, overtime_daily_cap_fen=3_000)
    quote = price_after_use(
        size="M",
        started_at=START,
        ended_at=START + timedelta(hours=26),
        paid_hours=2,
        grace=timedelta(hours=1),
        max_fen=None,
    )
    assert (quote.rental_fen, quote.overtime_hours, quote.overtime_fen) == (1_000, 24, 3_000)
    assert quote.amount_fen == 4_000 and quote.billed_hours == 26
