"""Money as people read and type it: the one place where integer fen become ``¥3,322.71``.

Inside the project money is an ``int`` number of fen (DESIGN rule 1). Gateways' yuan strings are
converted at the gateway edge (``payments.gateways.money``); this module is for people: admin
lists and detail pages, the finance dashboard and settlement report, confirmation pages, the
customer pages and exports meant to be read. Machine exports keep fen in their own columns.
No ``float`` anywhere: ``Decimal`` for input, integer arithmetic for output.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

YUAN_SIGN = "¥"
_FEN_PER_YUAN = 100


def format_yuan(fen: int | None, *, signed: bool = False, symbol: bool = True) -> str:
    """Integer fen -> yuan for people, with thousands separators.

    ``332271`` -> ``"¥3,322.71"``; ``-500`` -> ``"-¥5.00"``; ``signed=True`` puts ``+`` before a
    positive amount (``"+¥12.00"``, for ledgers); ``symbol=False`` leaves out ``¥`` (for a template
    that prints it itself); ``None`` -> ``""`` (nothing known). Raises ``TypeError`` for a float
    (money is never a float) or anything that is not a whole number of fen.
    """
    if fen is None:
        return ""
    if isinstance(fen, bool) or not isinstance(fen, int):
        if isinstance(fen, str) and fen.lstrip("+-").isdigit():  # a fen amount that travelled as text
            fen = int(fen)
        else:
            raise TypeError(f"fen must be an int, got {type(fen).__name__}")
    sign = "-" if fen < 0 else ("+" if signed and fen > 0 else "")
    whole, cents = divmod(abs(fen), _FEN_PER_YUAN)
    return f"{sign}{YUAN_SIGN if symbol else ''}{whole:,}.{cents:02d}"


def yuan_decimal(fen: int) -> Decimal:
    """``332271`` -> ``Decimal("3322.71")``: for spreadsheet cells, which need numbers, not text."""
    return (Decimal(fen) / _FEN_PER_YUAN).quantize(Decimal("0.01"))


def parse_yuan(text: str | Decimal) -> int:
    """What a person typed, in yuan (``"3,322.71"``, ``"¥12"``, ``"0.5"``) -> fen (``332271``).

    At most two decimals; raises ``ValueError`` otherwise (never rounds money silently).
    """
    if isinstance(text, Decimal):
        value = text
    else:
        cleaned = str(text).strip().replace(",", "").replace(YUAN_SIGN, "").replace("￥", "").strip()
        try:
            value = Decimal(cleaned)
        except InvalidOperation as exc:
            raise ValueError(f"not an amount in yuan: {text!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not an amount in yuan: {text!r}")
    fen = value * _FEN_PER_YUAN
    if fen != fen.to_integral_value(rounding=ROUND_HALF_UP):
        raise ValueError(f"at most two decimals: {text!r}")
    return int(fen)
