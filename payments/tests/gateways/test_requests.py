"""The request dataclasses refuse a non-positive or non-int amount when they are made, before any
adapter can send it (one check for every gateway, instead of one in each adapter method)."""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ValidationFailed
from payments.gateways.base import PrepayRequest, RefundRequest

NOT_POSITIVE_INT = st.one_of(
    st.integers(max_value=0), st.floats(allow_nan=False), st.decimals(allow_nan=False), st.text(), st.booleans()
)


def _prepay(amount_fen):
    return PrepayRequest(
        payment_no="PY1",
        amount_fen=amount_fen,
        description="Locker rental",
        product="native",
        expires_at=datetime(2026, 11, 30, tzinfo=UTC),
        notify_url="https://example.invalid/notify",
    )


def _refund(refund_fen, total_fen=300):
    return RefundRequest(
        refund_no="RF1", payment_no="PY1", gateway_trade_no=None, refund_fen=refund_fen, total_fen=total_fen, reason=""
    )


@given(NOT_POSITIVE_INT)
def test_a_prepay_of_no_money_cannot_be_made(amount_fen):
    with pytest.raises(ValidationFailed):
        _prepay(amount_fen)


@given(NOT_POSITIVE_INT)
def test_a_refund_of_no_money_cannot_be_made(refund_fen):
    with pytest.raises(ValidationFailed):
        _refund(refund_fen)


@given(st.one_of(st.floats(), st.text(), st.none()))
def test_a_refund_needs_the_total_in_whole_fen(total_fen):
    with pytest.raises(ValidationFailed):
        _refund(100, total_fen)


@given(st.integers(min_value=1, max_value=10**12))
def test_positive_fen_are_accepted(fen):
    assert _prepay(fen).amount_fen == fen
    assert _refund(fen, fen).refund_fen == fen
