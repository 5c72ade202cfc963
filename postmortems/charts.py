"""Server-rendered SVG charts for the metrics page: no JavaScript, no CDN, no inline style attributes (the CSP
forbids them); colours are SVG presentation attributes. Every label goes through escape()."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# The severity colours of static/css/portal.css, repeated here because SVG attributes cannot read CSS variables
# in every mail client / viewer that may open an exported chart.
SEVERITY_COLOURS = {"P0": "#b3121f", "P1": "#c2410c", "P2": "#a16207", "P3": "#1d4ed8"}
NEUTRAL = "#4b5563"
GRID = "#e5e7eb"
TEXT = "#111827"
MUTED = "#4b5563"


@dataclass
class Bar:
    label: str
    value: float
    display: str
    colour: str = "#1e40af"


def _nice_max(value: float) -> float:
    """A round axis maximum at or above value (1, 2, 5 x 10^n)."""
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def stacked_weekly(*, weeks, series: list[tuple[str, list[int]]], title: str, chart_id: str) -> SafeString:
    """Columns per week, stacked by severity, with a legend and a y axis."""
    width, height = 720, 260
    left, right, top, bottom = 36, 10, 30, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(values[i] for _, values in series) for i in range(len(weeks))]
    # Counts are whole numbers: four equal whole-number steps, so no axis label reads 1.2 incidents.
    y_step = max(1, -(-_nice_max(max(totals, default=0)) // 4))
    y_max = int(y_step * 4)
    slot = plot_w / max(len(weeks), 1)
    bar_w = max(slot * 0.72, 1.5)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{chart_id}-title" class="chart">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
    ]
    for tick in range(5):
        value = y_max * tick / 4
        y = top + plot_h - plot_h * tick / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        label = f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="{MUTED}">{label}</text>'
        )
    label_every = max(1, round(len(weeks) / 12))
    for i, week in enumerate(weeks):
        x = left + slot * i + (slot - bar_w) / 2
        base = top + plot_h
        for level, values in series:
            count = values[i]
            if not count:
                continue
            h = plot_h * count / y_max
            base -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{SEVERITY_COLOURS.get(level, NEUTRAL)}"><title>{escape(level)} week of '
                f"{week:%Y-%m-%d}: {count}</title></rect>"
            )
        if i % label_every == 0:
            parts.append(
                f'<text x="{left + slot * i + slot / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                f'font-size="11" fill="{MUTED}">{week:%b %d}</text>'
            )
    legend_x = left
    for level, _ in series:
        parts.append(
            f'<rect x="{legend_x}" y="8" width="12" height="12" fill="{SEVERITY_COLOURS.get(level, NEUTRAL)}"/>'
            f'<text x="{legend_x + 16}" y="18" font-size="12" fill="{TEXT}">{escape(level)}</text>'
        )
        legend_x += 52
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated label is escaped above


def horizontal_bars(*, bars: list[Bar], title: str, chart_id: str, max_value: float | None = None) -> SafeString:
    """One labelled bar per row; the value's text sits at the bar's end."""
    row_h, label_w, value_w, width = 26, 150, 110, 520
    height = max(len(bars), 1) * row_h + 12
    plot_w = width - label_w - value_w
    top_value = max_value if max_value is not None else _nice_max(max((b.value for b in bars), default=0))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{chart_id}-title" class="chart">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
    ]
    for i, bar in enumerate(bars):
        y = 6 + i * row_h
        w = plot_w * (bar.value / top_value) if top_value else 0
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" font-size="12" fill="{TEXT}">'
            f"{escape(bar.label[:24])}</text>"
        )
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{plot_w}" height="16" fill="{GRID}" rx="3"/>')
        if w > 0:
            parts.append(
                f'<rect x="{label_w}" y="{y + 3}" width="{max(w, 2):.1f}" height="16" fill="{bar.colour}" rx="3"/>'
            )
        parts.append(
            f'<text x="{label_w + plot_w + 8}" y="{y + 15}" font-size="12" fill="{TEXT}">{escape(bar.display)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated label is escaped above
