"""Server-side SVG charts: no JavaScript, no chart library, nothing from another origin.

The CSP allows no inline ``style`` (``style-src 'self'``), so colours are SVG presentation attributes
(``fill``, ``stroke``), which are markup rather than style; sizing is left to the page's stylesheet through
classes. Every chart carries a ``<title>`` and ``<desc>`` for screen readers.

A chart is meant to be read without its numbers: the region beyond the threshold is shaded red, history
is a solid line in a lighter min-max envelope, the projection a dashed line in its band, and the line's
colour says whether the threshold is far (blue), coming (amber) or crossed (red).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 60, 16, 14, 26
TONES = {"ok": "#1d4ed8", "warning": "#b45309", "critical": "#b91c1c", "none": "#475569"}
THRESHOLD_COLOUR = "#b91c1c"


@dataclass(frozen=True)
class Point:
    at: datetime
    value: float
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Marker:
    at: datetime
    value: float
    label: str


def _num(x: float) -> str:
    return f"{x:.1f}"


class _Frame:
    def __init__(self, start: datetime, end: datetime, y_min: float, y_max: float) -> None:
        self.start, self.end = start, end
        self.y_min, self.y_max = y_min, y_max if y_max > y_min else y_min + 1
        self.span_s = max(1.0, (end - start).total_seconds())

    def x(self, at: datetime) -> float:
        fraction = (at - self.start).total_seconds() / self.span_s
        return LEFT + min(1.0, max(0.0, fraction)) * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        fraction = (value - self.y_min) / (self.y_max - self.y_min)
        return HEIGHT - BOTTOM - min(1.0, max(0.0, fraction)) * (HEIGHT - TOP - BOTTOM)

    def xy(self, at: datetime, value: float) -> str:
        return f"{_num(self.x(at))},{_num(self.y(value))}"


def _polyline(frame: _Frame, points: Sequence[Point], **attrs: str) -> str:
    coords = " ".join(frame.xy(p.at, p.value) for p in points)
    return f'<polyline points="{coords}" fill="none"{_attrs(attrs)}/>'


def _area(frame: _Frame, points: Sequence[Point], **attrs: str) -> str:
    ranged = [p for p in points if p.low is not None and p.high is not None]
    if len(ranged) < 2:
        return ""
    upper = [frame.xy(p.at, p.high) for p in ranged]  # type: ignore[arg-type]
    lower = [frame.xy(p.at, p.low) for p in reversed(ranged)]  # type: ignore[arg-type]
    return f'<polygon points="{" ".join(upper + lower)}"{_attrs(attrs)}/>'


def _attrs(attrs: dict[str, str]) -> str:
    return "".join(
        f' {name.rstrip("_").replace("_", "-")}="{escape(value)}"' for name, value in attrs.items()
    )


def _open_svg(chart_id: str, title: str, description: str) -> list[str]:
    """The opening of a chart: the svg element labelled by its title and description, and the plot area."""
    cid = escape(chart_id)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" class="chart" role="img" '
        f'aria-labelledby="{cid}-title {cid}-desc" id="{cid}">',
        f'<title id="{cid}-title">{escape(title)}</title>',
        f'<desc id="{cid}-desc">{escape(description)}</desc>',
        f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
        f'height="{HEIGHT - TOP - BOTTOM}" fill="#ffffff" stroke="#cbd5e1"/>',
    ]


def _y_grid(frame: _Frame, format_y: Callable[[float], str]) -> list[str]:
    """Five horizontal grid lines with their values on the left."""
    lines = []
    for i in range(5):
        value = frame.y_min + (frame.y_max - frame.y_min) * i / 4
        y = _num(frame.y(value))
        lines.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}" stroke="#e2e8f0"/>'
            f'<text x="{LEFT - 6}" y="{y}" dy="0.35em" text-anchor="end" font-size="11" fill="#475569">'
            f"{escape(format_y(value))}</text>"
        )
    return lines


def time_series_svg(
    *,
    chart_id: str,
    title: str,
    description: str,
    history: Sequence[Point],
    projection: Sequence[Point] = (),
    threshold: float | None = None,
    threshold_label: str = "",
    higher_is_worse: bool = True,
    start: datetime,
    end: datetime,
    now: datetime,
    y_range: tuple[float, float],
    format_y: Callable[[float], str] = _num,
    tone: str = "ok",
    marker: Marker | None = None,
    tick_days: int = 30,
) -> SafeString:
    """History up to ``now`` and a projection after it, on one time axis from ``start`` to ``end``."""
    frame = _Frame(start, end, *y_range)
    colour = TONES.get(tone, TONES["none"])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = _open_svg(chart_id, title, description)
    x_now = frame.x(now)
    parts.append(
        f'<rect class="future" x="{_num(x_now)}" y="{TOP}" width="{_num(LEFT + plot_w - x_now)}" '
        f'height="{plot_h}" fill="#f1f5f9"/>'
    )
    if threshold is not None:
        y_t = frame.y(threshold)
        top, bottom = (TOP, y_t) if higher_is_worse else (y_t, TOP + plot_h)
        parts.append(
            f'<rect class="zone-over" x="{LEFT}" y="{_num(top)}" width="{plot_w}" '
            f'height="{_num(max(0.0, bottom - top))}" fill="#fee2e2" fill-opacity="0.7"/>'
        )
    parts.extend(_y_grid(frame, format_y))
    tick = start
    while tick <= end:
        x = frame.x(tick)
        label = "now" if abs((tick - now).total_seconds()) < 43200 else f"{tick:%b} {tick.day}"
        anchor = "end" if x > LEFT + plot_w - 20 else "middle"
        parts.append(
            f'<text x="{_num(x)}" y="{HEIGHT - 8}" text-anchor="{anchor}" font-size="11" fill="#475569">'
            f"{escape(label)}</text>"
        )
        tick += timedelta(days=tick_days)
    if history:
        parts.append(_area(frame, history, class_="range", fill=colour, fill_opacity="0.15"))
        parts.append(_polyline(frame, history, class_="history", stroke=colour, stroke_width="2"))
        if len(history) == 1:
            p = history[0]
            parts.append(
                f'<circle class="history" cx="{_num(frame.x(p.at))}" cy="{_num(frame.y(p.value))}" r="3" '
                f'fill="{colour}"/>'
            )
    if projection:
        parts.append(_area(frame, projection, class_="band", fill=colour, fill_opacity="0.2"))
        parts.append(
            _polyline(
                frame,
                projection,
                class_="projection",
                stroke=colour,
                stroke_width="2",
                stroke_dasharray="6 4",
            )
        )
    if threshold is not None:
        y_line = _num(frame.y(threshold))
        parts.append(
            f'<line class="threshold" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y_line}" y2="{y_line}" '
            f'stroke="{THRESHOLD_COLOUR}" stroke-width="1.5" stroke-dasharray="4 3"/>'
            f'<text x="{LEFT + 4}" y="{y_line}" dy="-4" font-size="11" fill="{THRESHOLD_COLOUR}">'
            f"{escape(threshold_label)}</text>"
        )
    parts.append(
        f'<line class="now" x1="{_num(x_now)}" x2="{_num(x_now)}" y1="{TOP}" y2="{TOP + plot_h}" '
        'stroke="#475569" stroke-dasharray="2 2"/>'
    )
    if marker is not None:
        mx, my = frame.x(marker.at), frame.y(marker.value)
        anchor = "end" if mx > LEFT + plot_w * 0.75 else "start"
        dx = -8 if anchor == "end" else 8
        parts.append(
            f'<circle class="crossing" cx="{_num(mx)}" cy="{_num(my)}" r="5" fill="{THRESHOLD_COLOUR}" '
            'stroke="#ffffff" stroke-width="1.5"/>'
            f'<text x="{_num(mx)}" y="{_num(my)}" dx="{dx}" dy="14" text-anchor="{anchor}" font-size="11" '
            f'font-weight="bold" fill="{THRESHOLD_COLOUR}">{escape(marker.label)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every text and attribute value above is escaped)


SPARK_WIDTH, SPARK_HEIGHT = 120, 28


def sparkline_svg(*, values: Sequence[float], label: str, tone: str = "ok") -> SafeString:
    """A small line of ``values`` (oldest first, one per day) with no axes, for tables of many rows.

    ``label`` is the accessible name (for example "Views, last 30 days: 120 in total"). An all-zero series is
    a flat line on the baseline, so an inactive row still reads as "nothing happened"."""
    colour = TONES.get(tone, TONES["none"])
    count = len(values)
    top = max(values, default=0.0) or 1.0
    pad = 2.0
    step = (SPARK_WIDTH - 2 * pad) / max(1, count - 1)
    coords = " ".join(
        f"{_num(pad + i * step)},{_num(SPARK_HEIGHT - pad - (v / top) * (SPARK_HEIGHT - 2 * pad))}"
        for i, v in enumerate(values)
    )
    return mark_safe(  # noqa: S308 (the label is escaped; the rest are numbers)
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {SPARK_WIDTH} {SPARK_HEIGHT}" '
        f'class="sparkline" role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>'
        f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.5"/></svg>'
    )


@dataclass(frozen=True)
class Series:
    label: str
    colour: str
    points: Sequence[Point]
    dashed: bool = False


def multi_series_svg(
    *,
    chart_id: str,
    title: str,
    description: str,
    series: Sequence[Series],
    start: datetime,
    end: datetime,
    y_range: tuple[float, float],
    format_y: Callable[[float], str] = _num,
    boundaries: Sequence[tuple[datetime, str]] = (),
    threshold: float | None = None,
    threshold_label: str = "",
    tick_seconds: float = 60,
) -> SafeString:
    """Several lines on one time axis of seconds to minutes (a load test), with labelled vertical boundaries
    (its phases), an optional threshold line and a legend. Same frame, lines and escaping as
    :func:`time_series_svg`."""
    frame = _Frame(start, end, *y_range)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = _open_svg(chart_id, title, description)
    parts.extend(_y_grid(frame, format_y))
    step = max(1.0, tick_seconds)
    offset = 0.0
    while start + timedelta(seconds=offset) <= end:
        x = frame.x(start + timedelta(seconds=offset))
        parts.append(
            f'<text x="{_num(x)}" y="{HEIGHT - 8}" text-anchor="middle" font-size="11" fill="#475569">'
            f"{offset:.0f} s</text>"
        )
        offset += step
    for at, label in boundaries:
        x_at = _num(frame.x(at))
        parts.append(
            f'<line class="boundary" x1="{x_at}" x2="{x_at}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#64748b" '
            f'stroke-dasharray="3 3"/><text x="{x_at}" y="{TOP + 10}" dx="3" font-size="10" fill="#334155">'
            f"{escape(label)}</text>"
        )
    if threshold is not None:
        y_t = _num(frame.y(threshold))
        parts.append(
            f'<line class="threshold" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y_t}" y2="{y_t}" '
            f'stroke="{THRESHOLD_COLOUR}" stroke-width="1.5" stroke-dasharray="4 3"/>'
            f'<text x="{LEFT + plot_w - 4}" y="{y_t}" dy="-4" text-anchor="end" font-size="11" '
            f'fill="{THRESHOLD_COLOUR}">{escape(threshold_label)}</text>'
        )
    for i, line in enumerate(series):
        if line.points:
            attrs = {"class_": "series", "stroke": line.colour, "stroke_width": "2"}
            if line.dashed:
                attrs["stroke_dasharray"] = "6 4"
            parts.append(_polyline(frame, line.points, **attrs))
        lx = LEFT + 8 + i * 150
        parts.append(
            f'<rect x="{lx}" y="{HEIGHT - BOTTOM - 14}" width="10" height="10" fill="{escape(line.colour)}"/>'
            f'<text x="{lx + 14}" y="{HEIGHT - BOTTOM - 5}" font-size="11" fill="#0f172a">'
            f"{escape(line.label)}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every text and attribute value above is escaped)
