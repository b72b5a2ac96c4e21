import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.errors import DomainError, ValidationFailed
from lockers.pricing import price_compute, price_quote
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
