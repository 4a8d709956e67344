"""Hand-written inline SVG for the compliance report: bar charts and a line chart whose axes are scaled to
the data (so 5.9% and 8.3% are told apart), with tick labels. No scripts, nothing fetched: the page works
offline."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence

COLOURS = {"ok": "#2f855a", "warn": "#c05621", "bad": "#c53030", "info": "#2b6cb0", "muted": "#718096"}
SERIES_COLOURS = ("#2b6cb0", "#2f855a", "#c53030", "#d69e2e", "#718096", "#805ad5")


def nice_top(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above ``value`` (an axis end)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def count_top(value: float) -> float:
    """An axis end for counts whose quarter marks are whole numbers."""
    return float(max(4, math.ceil(nice_top(value) / 4) * 4))


def percent(value: float) -> str:
    """A rate as a percentage with one decimal."""
    return f"{value:.1%}"


def whole(value: float) -> str:
    """A count with thousands separators."""
    return f"{value:,.0f}"


def bar_chart(
    title: str, rows: Sequence[tuple[str, float, str]], fmt: Callable[[float], str] = whole, label_width: int = 190
) -> str:
    """A horizontal bar chart of (label, value, colour), its axis from 0 to a round number above the largest."""
    width, bar_h, gap, top_pad = 640, 20, 8, 22
    plot_w = width - label_width - 70
    largest = max((v for _, v, _ in rows), default=0)
    top = count_top(largest) if fmt is whole else nice_top(largest)
    height = top_pad + len(rows) * (bar_h + gap) + 24
    esc = html.escape
    parts = [f'<svg role="img" aria-label="{esc(title)}" width="{width}" height="{height}" font-size="12">']
    for k in range(5):
        x = label_width + plot_w * k / 4
        parts.append(
            f'<line x1="{x:.1f}" y1="{top_pad - 6}" x2="{x:.1f}" y2="{height - 20}" stroke="#e2e8f0"/>'
            f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle" fill="#4a5568">{esc(fmt(top * k / 4))}</text>'
        )
    for i, (label, value, colour) in enumerate(rows):
        y = top_pad + i * (bar_h + gap)
        w = max(1.0, plot_w * value / top)
        parts.append(
            f'<text x="{label_width - 8}" y="{y + 14}" text-anchor="end">{esc(label)}</text>'
            f'<rect x="{label_width}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}" rx="2"/>'
            f'<text x="{label_width + w + 5:.1f}" y="{y + 14}">{esc(fmt(value))}</text>'
        )
    parts.append("</svg>")
    return f"<figure><figcaption>{esc(title)}</figcaption>{''.join(parts)}</figure>"


def line_chart(title: str, months: Sequence[str], series: dict[str, Sequence[int]]) -> str:
    """Monthly lines, one per series, on one axis scaled to the largest monthly value, with a legend."""
    width, height, left, right, top_pad, bottom = 900, 320, 60, 40, 16, 60
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    top = count_top(max((max(v, default=0) for v in series.values()), default=0))
    esc = html.escape
    n = len(months)

    def x_of(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y_of(v: float) -> float:
        return top_pad + plot_h * (1 - v / top)

    parts = [f'<svg role="img" aria-label="{esc(title)}" width="{width}" height="{height}" font-size="12">']
    for k in range(5):
        y = y_of(top * k / 4)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e2e8f0"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#4a5568">{whole(top * k / 4)}</text>'
        )
    every = max(1, math.ceil(n / 12))
    for i, month in enumerate(months):
        # Every few months, counted back from the last, so the latest month is always named.
        if (n - 1 - i) % every == 0:
            parts.append(
                f'<text x="{x_of(i):.1f}" y="{top_pad + plot_h + 16}" text-anchor="middle" '
                f'fill="#4a5568">{esc(month)}</text>'
            )
    for k, (name, values) in enumerate(series.items()):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        points = " ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, v in enumerate(values))
        # The first line is drawn wide and pale, so a series lying on it (verifications on activations) shows.
        wide = 'stroke-width="5" stroke-opacity="0.45"' if k == 0 else 'stroke-width="2"'
        parts.append(f'<polyline fill="none" stroke="{colour}" {wide} points="{points}"/>')
        lx = left + (k % 3) * 260
        ly = height - 28 + (k // 3) * 16
        parts.append(
            f'<rect x="{lx}" y="{ly - 9}" width="14" height="4" fill="{colour}"/>'
            f'<text x="{lx + 20}" y="{ly - 4}">{esc(name)} ({whole(sum(values))})</text>'
        )
    parts.append("</svg>")
    return f"<figure><figcaption>{esc(title)}</figcaption>{''.join(parts)}</figure>"
