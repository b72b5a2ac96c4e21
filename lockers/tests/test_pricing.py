"""Server-side pricing of rentals and overtime (hours, minimum, caps), from the price plans; integer fen."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import DomainError, ValidationFailed
from lockers.pricing import overtime_compute, overtime_quote, price_compute, price_quote
from lockers.tests.factories import PricePlanFactory


@given(
    price=st.integers(1, 10**6), min_hours=st.integers(1, 48), cap=st.integers(1, 10**8), hours=st.integers(1, 10**4)
)
def test_price_is_per_billed_hour_with_minimum_and_cap(price, min_hours, cap, hours):
    billed, amount = price_compute(price_per_hour_fen=price, min_hours=min_hours, cap_fen=cap, hours=hours)
    assert billed == max(hours, min_hours)
    assert amount == min(billed * price, cap)
    assert 0 < amount <= cap
    assert isinstance(amount, int)


@given(price=st.integers(1, 10**4), cap=st.integers(1, 10**7), hours=st.integers(1, 500))
def test_more_hours_never_cost_less(price, cap, hours):
    _, fewer = price_compute(price_per_hour_fen=price, min_hours=1, cap_fen=cap, hours=hours)
    _, more = price_compute(price_per_hour_fen=price, min_hours=1, cap_fen=cap, hours=hours + 1)
    assert more >= fewer


@pytest.mark.django_db
def test_quote_uses_the_plan_of_the_size():
    PricePlanFactory(size="L", price_per_hour_fen=800, min_hours=2, cap_fen=8_000)
    assert price_quote(size="L", hours=1, max_hours=72).amount_fen == 1_600  # minimum 2 hours
    assert price_quote(size="L", hours=5, max_hours=72).amount_fen == 4_000
    assert price_quote(size="L", hours=72, max_hours=72).amount_fen == 8_000  # capped


@pytest.mark.django_db
@pytest.mark.parametrize("hours", [0, -1, 73])
def test_quote_refuses_hours_out_of_range(hours):
    PricePlanFactory(size="S")
    with pytest.raises(ValidationFailed):
        price_quote(size="S", hours=hours, max_hours=72)


@pytest.mark.django_db
def test_quote_without_active_plan_is_a_clear_error():
    PricePlanFactory(size="S", is_active=False)
    with pytest.raises(DomainError) as err:
        price_quote(size="S", hours=1, max_hours=72)
    assert err.value.code == "no_price_plan"


# --- overtime: every started hour since the paid end, each 24-hour day capped -------------------------------

HOUR, DAY = 3600, 86400
prices = {"per_hour_fen": st.integers(1, 10**5), "daily_cap_fen": st.integers(1, 10**7)}


@given(**prices, overdue=st.integers(-(10**7), 60 * DAY))
def test_overtime_is_per_started_hour_never_negative_never_above_the_daily_caps(per_hour_fen, daily_cap_fen, overdue):
    hours, days, amount = overtime_compute(
        per_hour_fen=per_hour_fen, daily_cap_fen=daily_cap_fen, overdue_seconds=overdue
    )
    assert isinstance(amount, int) and amount >= 0
    if overdue <= 0:
        assert (hours, days, amount) == (0, 0, 0)
        return
    assert hours == math.ceil(overdue / HOUR)  # every started hour
    assert days == math.ceil(hours / 24)  # every started day
    assert 0 < amount <= daily_cap_fen * days  # never above the cap times the started days
    assert amount <= per_hour_fen * hours  # never above the hours at the hourly price
    assert amount == min(hours * per_hour_fen, daily_cap_fen) or hours > 24  # within a day: hours or the cap


@given(**prices, overdue=st.integers(1, 30 * DAY), later=st.integers(0, 5 * DAY))
def test_overtime_never_costs_less_for_more_time(per_hour_fen, daily_cap_fen, overdue, later):
    def cost(seconds):
        return overtime_compute(per_hour_fen=per_hour_fen, daily_cap_fen=daily_cap_fen, overdue_seconds=seconds)[2]

    assert cost(overdue + later) >= cost(overdue)


@given(**prices, hours=st.integers(1, 24 * 30), into=st.integers(1, HOUR))
def test_overtime_is_the_same_within_a_started_hour(per_hour_fen, daily_cap_fen, hours, into):
    start = (hours - 1) * HOUR
    first = overtime_compute(per_hour_fen=per_hour_fen, daily_cap_fen=daily_cap_fen, overdue_seconds=start + 1)
    last = overtime_compute(per_hour_fen=per_hour_fen, daily_cap_fen=daily_cap_fen, overdue_seconds=start + into)
    assert first == last and first[0] == hours


@pytest.mark.parametrize(
    ("overdue", "expected"),
    [
        (1, (1, 1, 500)),
        (HOUR, (1, 1, 500)),
        (HOUR + 1, (2, 1, 1_000)),
        (10 * HOUR, (10, 1, 3_000)),  # the day's cap
        (DAY, (24, 1, 3_000)),
        (DAY + 1, (25, 2, 3_500)),  # a new day starts: its first hour
        (3 * DAY, (72, 3, 9_000)),
    ],
)
def test_overtime_known_answers(overdue, expected):
    assert overtime_compute(per_hour_fen=500, daily_cap_fen=3_000, overdue_seconds=overdue) == expected


@pytest.mark.django_db
def test_overtime_quote_reads_the_plan_and_falls_back_to_its_price_and_cap():
    PricePlanFactory(size="S", price_per_hour_fen=300, cap_fen=2_000)
    PricePlanFactory(
        size="L", price_per_hour_fen=800, cap_fen=8_000, overtime_per_hour_fen=1_000, overtime_daily_cap_fen=5_000
    )
    plain = overtime_quote(size="S", overdue_seconds=2 * HOUR + 5)
    assert (plain.per_hour_fen, plain.daily_cap_fen, plain.billed_hours, plain.amount_fen) == (300, 2_000, 3, 900)
    assert overtime_quote(size="S", overdue_seconds=DAY).amount_fen == 2_000
    own = overtime_quote(size="L", overdue_seconds=4 * HOUR)
    assert (own.per_hour_fen, own.daily_cap_fen, own.amount_fen) == (1_000, 5_000, 4_000)
    assert overtime_quote(size="L", overdue_seconds=DAY + HOUR).amount_fen == 6_000
    with pytest.raises(DomainError) as err:
        overtime_quote(size="M", overdue_seconds=HOUR)
    assert err.value.code == "no_price_plan"
