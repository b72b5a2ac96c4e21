"""``{% load backoffice %}``: the back office's small pieces of HTML (``core.admin``) in templates.

``{{ refund.refund_no|ident }}`` an identifier kept whole; ``{{ row.at|when }}`` a time in
``TIME_ZONE`` with its name (``|when_minute``: to the minute, ``2026-11-30 15:04 CST``, as the customer pages
show times); ``{{ event.data|data }}`` an event's data in words and yuan."""

from __future__ import annotations

from django import template

from core.admin import data_html, ident_html, when_html

register = template.Library()
register.filter("ident", ident_html)
register.filter("when", when_html)
register.filter("when_minute", lambda at: when_html(at, seconds=False))
register.filter("data", data_html)
