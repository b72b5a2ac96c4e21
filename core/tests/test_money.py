"""The one helper for money people read: integer fen <-> ``¥3,322.71``, never a float."""

from decimal import Decimal

import pytest
from django.template import Context, Template
from hypothesis import given
from hypothesis import strategies as st

from core.money import format_yuan, parse_yuan, yuan_decimal


def test_format_yuan_as_people_read_it():
    assert [format_yuan(v) for v in (0, 5, -5, 100, 332271, 123456789, None)] == [
        "¥0.00",
        "¥0.05",
        "-¥0.05",
        "¥1.00",
        "¥3,322.71",
        "¥1,234,567.89",
        "",
    ]
    assert format_yuan(1200, signed=True) == "+¥12.00" and format_yuan(-1200, signed=True) == "-¥12.00"
    assert format_yuan(0, signed=True) == "¥0.00" and format_yuan(332271, symbol=False) == "3,322.71"
    assert format_yuan("-500") == "-¥5.00"  # a fen amount that travelled as text (audit log reasons)


@pytest.mark.parametrize("bad", [12.5, Decimal("1.00"), True, "12.00", "abc"])
def test_format_yuan_refuses_anything_but_whole_fen(bad):
    with pytest.raises(TypeError):
        format_yuan(bad)


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_parse_reads_back_what_format_wrote(fen):
    assert parse_yuan(format_yuan(fen)) == fen
    assert yuan_decimal(fen) * 100 == fen


@pytest.mark.parametrize(
    ("text", "fen"), [("12", 1200), ("12.5", 1250), ("¥3,322.71", 332271), ("￥0.01", 1), (" 7.00 ", 700)]
)
def test_parse_yuan_as_people_type_it(text, fen):
    assert parse_yuan(text) == fen


@pytest.mark.parametrize("text", ["1.005", "", "abc", "NaN", "Infinity", "1e400x"])
def test_parse_yuan_never_rounds_or_guesses(text):
    with pytest.raises(ValueError):
        parse_yuan(text)


def test_template_filters():
    out = Template("{% load money %}{{ a|yuan }} {{ b|yuan_signed }} [{{ c|yuan }}]").render(
        Context({"a": 332271, "b": 150, "c": None})
    )
    assert out == "¥3,322.71 +¥1.50 []"
