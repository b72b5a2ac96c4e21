"""Display helpers for integer fen (never float)."""

from __future__ import annotations


def yuan(fen: int | None) -> str:
    """``12345`` -> ``"123.45"``; ``-5`` -> ``"-0.05"``; ``None`` -> ``""``."""
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}{whole:,}.{cents:02d}"
