"""Money conversion at the gateway edge.

Inside the project money is an ``int`` number of fen. Alipay speaks yuan strings such as
``"88.88"``; these two functions are the only place where the two meet. No ``float`` anywhere.
"""

from __future__ import annotations

import re
from decimal import Decimal

_YUAN_RE = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]{1,2})?")
_FEN_PER_YUAN = 100


def fen_to_yuan(fen: int) -> str:
    """``1234`` -> ``"12.34"``. Rejects negatives and anything that is not a plain ``int``."""
    if type(fen) is not int:  # bool is an int subclass: refuse it, and refuse floats/Decimals
        raise TypeError(f"fen must be an int, got {type(fen).__name__}")
    if fen < 0:
        raise ValueError("fen must not be negative")
    return str((Decimal(fen) / _FEN_PER_YUAN).quantize(Decimal("0.01")))


def yuan_to_fen(yuan: str) -> int:
    """``"12.34"`` -> ``1234``. Strict: digits with up to two decimals, no sign, no spaces, no exponent."""
    if not isinstance(yuan, str) or not yuan.isascii() or _YUAN_RE.fullmatch(yuan) is None:
        raise ValueError(f"not a yuan amount: {yuan!r}")
    whole, _, cents = yuan.partition(".")
    return int(whole) * _FEN_PER_YUAN + int(cents.ljust(2, "0") or "0")
