"""fen <-> yuan at the gateway edge: exact, strict, never float."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payments.gateways.money import fen_to_yuan, yuan_to_fen


@pytest.mark.parametrize(
    ("fen", "yuan"),
    [(0, "0.00"), (1, "0.01"), (10, "0.10"), (100, "1.00"), (1234, "12.34"), (10**15 + 7, "10000000000000.07")],
)
def test_known_values(fen: int, yuan: str) -> None:
    assert fen_to_yuan(fen) == yuan
    assert yuan_to_fen(yuan) == fen


@pytest.mark.parametrize(("text", "fen"), [("12", 1200), ("12.3", 1230), ("0.1", 10), ("0", 0)])
def test_short_forms_are_accepted(text: str, fen: int) -> None:
    assert yuan_to_fen(text) == fen


@pytest.mark.parametrize(
    "text",
    ["", " 1.00", "1.00 ", "-1.00", "+1.00", "1.001", "1.", ".5", "1e2", "1,00", "01.00", "NaN", "\uff11.00", "1_0.00"],
)
def test_strict_parsing(text: str) -> None:
    with pytest.raises(ValueError):
        yuan_to_fen(text)


@pytest.mark.parametrize("bad", [1.5, Decimal("1"), True, "100", None])
def test_fen_to_yuan_rejects_non_int(bad: object) -> None:
    with pytest.raises(TypeError):
        fen_to_yuan(bad)  # type: ignore[arg-type]


def test_fen_to_yuan_rejects_negative() -> None:
    with pytest.raises(ValueError):
        fen_to_yuan(-1)


@given(st.integers(min_value=0, max_value=10**18))
def test_round_trip_from_fen(fen: int) -> None:
    assert yuan_to_fen(fen_to_yuan(fen)) == fen


@given(st.from_regex(r"\A(0|[1-9][0-9]{0,12})(\.[0-9]{1,2})?\Z"))
def test_round_trip_from_yuan(text: str) -> None:
    assert Decimal(fen_to_yuan(yuan_to_fen(text))) == Decimal(text)
