"""``{% load backoffice %}``: the back office's small pieces of HTML (``core.admin``) in templates.

``{{ refund.refund_no|ident }}`` an identifier kept whole; ``{{ row.at|when }}`` a time in
``TIME_ZONE`` with its name; ``{{ event.data|data }}`` an event's data in words and yuan."""

from __future__ import annotations

from django import template

from core.admin import data_html, ident_html, when_html

register = template.Library()
register.filter("ident", ident_html)
register.filter("when", when_html)
register.filter("data", data_html)
