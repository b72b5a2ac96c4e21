"""Back-office charts: server-side SVG drawn by pygal (no JavaScript, no CDN), amounts in yuan.

Values are integer fen; pygal only places them, and every label it writes goes through
``core.money.format_yuan``. pygal escapes the labels it is given (it builds the SVG as an
element tree); the inline configuration script it appends for its optional tooltips is removed,
so the page loads nothing and runs nothing for a chart; each bar gets a ``<title>`` (the browser's own
tooltip) with its label and amount instead.
"""

from __future__ import annotations

import re

import pygal
from django.utils.safestring import SafeString, mark_safe
from pygal.style import Style

from core.money import format_yuan

_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.DOTALL)
# pygal describes each bar with <desc> elements that only its script shows; a <title> is a native tooltip
_BAR_DESC = re.compile(
    r'<desc class="value">([^<]*)</desc>((?:<desc class="[^"]*">[^<]*</desc>)*?)<desc class="x_label">([^<]*)</desc>'
)
STYLE = Style(
    background="transparent",
    plot_background="transparent",
    font_family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    colors=("#417690", "#ba2121", "#c08a00", "#2e7d32", "#6a1b9a", "#00838f", "#5d4037"),
    title_font_size=14,
    label_font_size=11,
    major_label_font_size=11,
    legend_font_size=12,
    value_font_size=10,
)


def _fen_label(value: float | None) -> str:
    return "" if value is None else format_yuan(round(value))


MAX_Y_LABELS = 5  # a 280-pixel chart reads 5 amounts on its axis; every ¥10 of ¥120 crams 13 together


def y_ticks(values: list[int], *, most: int = MAX_Y_LABELS) -> list[int]:
    """Round amounts (fen) for the y axis, from 0 past the largest value, at most ``most`` of them:
    the step is 1, 2 or 5 times a power of ten yuan (or fen, below a yuan)."""
    top = max([0, *values])
    if top <= 0:
        return [0]
    step = 1
    while True:
        for factor in (1, 2, 5):
            size = step * factor
            count = -(-top // size)  # intervals needed to reach the top
            if count + 1 <= most:
                return [i * size for i in range(count + 1)]
        step *= 10


def bar_chart(
    labels: list[str], series: dict[str, list[int]], *, title: str, width: int = 760, height: int = 280
) -> SafeString:
    """Grouped bars: one group per label, one bar per series (values in fen, labels in yuan)."""
    chart = pygal.Bar(
        js=[],
        style=STYLE,
        width=width,
        height=height,
        title=title,
        x_label_rotation=-30 if len(labels) > 8 or max(map(len, labels), default=0) > 14 else 0,
        truncate_label=-1,  # whole names ("WeChat Pay (QR code)"), never "WeChat Pay ..."
        show_minor_x_labels=len(labels) <= 16,
        legend_at_bottom=True,
        legend_at_bottom_columns=max(len(series), 1),
        value_formatter=_fen_label,
        print_values=False,
        margin=8,
    )
    chart.x_labels = labels
    chart.y_labels = y_ticks([v for values in series.values() for v in values])
    if len(labels) > 16:
        chart.x_labels_major_every = max(len(labels) // 10, 1)
    for name, values in series.items():
        chart.add(name, values)
    svg = chart.render(is_unicode=True, disable_xml_declaration=True)
    svg = _SCRIPT.sub("", svg).replace('class="pygal-chart"', 'class="pygal-chart bo-chart" role="img"', 1)
    svg = _BAR_DESC.sub(r'<title>\3: \1</title><desc class="value">\1</desc>\2<desc class="x_label">\3</desc>', svg)
    return mark_safe(svg)  # noqa: S308 - pygal's own SVG (labels escaped by its element tree), scripts removed
