"""``{% load money %}``: ``{{ payment.amount_fen|yuan }}`` -> ``¥3,322.71`` (core.money.format_yuan)."""

from __future__ import annotations

from django import template

from core.money import format_yuan

register = template.Library()


@register.filter
def yuan(fen) -> str:
    """Integer fen (or its text) -> ``¥3,322.71``; empty for ``None`` or ``""``."""
    if fen in (None, ""):
        return ""
    return format_yuan(fen)


@register.filter
def yuan_signed(fen) -> str:
    """Like ``yuan`` with ``+`` before a positive amount (ledger rows)."""
    if fen in (None, ""):
        return ""
    return format_yuan(fen, signed=True)
