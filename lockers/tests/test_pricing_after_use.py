"""The final amount of a rental paid after use (``price_after_use``), over many durations."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockers.pricing import price_after_use
from lockers.tests.factories import PricePlanFactory

START = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


@pytest.mark.django_db
@settings(max_examples=60, deadline=None)
@given(
    seconds=st.integers(min_value=0, max_value=10 * 24 * 3600),
    more=st.integers(min_value=1, max_value=3 * 24 * 3600),
    max_fen=st.integers(min_value=1, max_value=20_000),
)
def test_every_started_hour_is_billed_within_the_cap(seconds, more, max_fen):
    PricePlanFactory(size="M", price_per_hour_fen=500, min_hours=2, cap_fen=5_000)
    quote = price_after_use(size="M", started_at=START, ended_at=START + timedelta(seconds=seconds), max_fen=max_fen)
    later = price_after_use(
        size="M", started_at=START, ended_at=START + timedelta(seconds=seconds + more), max_fen=max_fen
    )
    assert quote.hours == max(1, -(-seconds // 3600))  # every started hour, at least one
    assert quote.amount_fen == min(max(quote.hours, 2) * 500, 5_000, max_fen)
    assert 0 < quote.amount_fen <= later.amount_fen <= min(5_000, max_fen)  # never less for staying longer
