"""Server-rendered inline SVG charts of the admin pages (no scripts; the CSP stays strict).

Every chart is a `Markup` string built from numbers and escaped labels only. Colours come from
SVG presentation attributes and classes in admin.css (inline `style` would need a CSP
exception). Each data point is one element with a `data-value` attribute and a `<title>`
tooltip, so a reader (or a test) can count and read the points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

SEVERITY_COLOURS = {
    "critical": "#7a0b16",
    "high": "#c8322b",
    "medium": "#e6a23c",
    "low": "#5b8fd9",
    "info": "#9aa3b2",
}
NEW_COLOUR = "#c8322b"
RESOLVED_COLOUR = "#2e8b57"


@dataclass(frozen=True, slots=True)
class Frame:
    """The plot area of a chart: width and height in px and the margins for the axes."""

    width: int = 640
    height: int = 180
    left: int = 44
    right: int = 12
    top: int = 12
    bottom: int = 24

    @property
    def inner_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def inner_height(self) -> int:
        return self.height - self.top - self.bottom


def nice_top(value: int) -> int:
    """A round upper bound of the y axis (1, 2, 5 times a power of ten) at or above `value`."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def _y_axis(frame: Frame, top: int) -> list[str]:
    parts = []
    for tick in (0, top // 2, top) if top >= 2 else (0, top):
        y = frame.top + frame.inner_height - tick / top * frame.inner_height
        parts.append(
            f'<line x1="{frame.left}" x2="{frame.width - frame.right}" y1="{y:.1f}" '
            f'y2="{y:.1f}" class="grid"/>'
            f'<text x="{frame.left - 4}" y="{y + 4:.1f}" class="tick" '
            f'text-anchor="end">{tick:,}</text>'
        )
    return parts


def _x_labels(frame: Frame, labels: Sequence[str], xs: Sequence[float]) -> list[str]:
    if not labels:
        return []
    y = frame.height - 6
    chosen = {0, len(labels) - 1}
    if len(labels) > 4:
        chosen.add(len(labels) // 2)
    return [
        f'<text x="{xs[i]:.1f}" y="{y}" class="tick" text-anchor="middle">'
        f"{escape(labels[i])}</text>"
        for i in sorted(chosen)
    ]


def _svg(frame: Frame, title: str, body: list[str], css: str) -> Markup:
    # Safe: the parts are numbers and `escape`d text only (see the module docstring).
    return Markup(  # noqa: S704
        f'<svg class="chart {css}" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {frame.width} {frame.height}" width="{frame.width}" '
        f'height="{frame.height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def line_chart(
    title: str,
    series: Mapping[str, Sequence[int]],
    labels: Sequence[str],
    *,
    frame: Frame | None = None,
) -> Markup:
    """One line per series (e.g. per severity) over the same x positions (e.g. scans)."""
    frame = frame or Frame()
    count = len(labels)
    if count == 0:
        return Markup('<p class="chart-empty">No finished scans yet.</p>')
    top = nice_top(max((max(v) for v in series.values() if v), default=0))
    step = frame.inner_width / max(1, count - 1)
    xs = [frame.left + (i * step if count > 1 else frame.inner_width / 2) for i in range(count)]
    body = _y_axis(frame, top) + _x_labels(frame, labels, xs)
    for name, values in series.items():
        colour = SEVERITY_COLOURS.get(name, "#2457c5")
        points = [
            (xs[i], frame.top + frame.inner_height - v / top * frame.inner_height)
            for i, v in enumerate(values)
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        body.append(
            f'<g class="series" data-series="{escape(name)}">'
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        body.extend(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}" '
            f'data-value="{v}"><title>{escape(name)} {v:,} · {escape(labels[i])}</title></circle>'
            for i, ((x, y), v) in enumerate(zip(points, values, strict=True))
        )
        body.append("</g>")
    legend_x = frame.left
    for name in series:
        colour = SEVERITY_COLOURS.get(name, "#2457c5")
        body.append(
            f'<rect x="{legend_x}" y="2" width="8" height="8" fill="{colour}"/>'
            f'<text x="{legend_x + 11}" y="10" class="legend">{escape(name)}</text>'
        )
        legend_x += 12 + 7 * len(name) + 10
    return _svg(frame, title, body, "line")


def paired_bars(
    title: str,
    pairs: Sequence[tuple[int, int]],
    labels: Sequence[str],
    *,
    names: tuple[str, str] = ("new", "resolved"),
    frame: Frame | None = None,
) -> Markup:
    """Two bars per x position (e.g. new vs resolved findings per scan)."""
    frame = frame or Frame()
    if not pairs:
        return Markup('<p class="chart-empty">No finished scans yet.</p>')
    top = nice_top(max(max(a, b) for a, b in pairs))
    slot = frame.inner_width / len(pairs)
    bar = max(1.0, slot * 0.38)
    xs = [frame.left + i * slot + slot / 2 for i in range(len(pairs))]
    body = _y_axis(frame, top) + _x_labels(frame, labels, xs)
    for (a, b), x, label in zip(pairs, xs, labels, strict=True):
        for offset, value, name, colour in (
            (-bar, a, names[0], NEW_COLOUR),
            (0.0, b, names[1], RESOLVED_COLOUR),
        ):
            h = value / top * frame.inner_height
            body.append(
                f'<rect class="bar {escape(name)}" x="{x + offset:.1f}" '
                f'y="{frame.top + frame.inner_height - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}" data-value="{value}">'
                f"<title>{escape(name)} {value:,} · {escape(label)}</title></rect>"
            )
    body.append(
        f'<rect x="{frame.left}" y="2" width="8" height="8" fill="{NEW_COLOUR}"/>'
        f'<text x="{frame.left + 11}" y="10" class="legend">{escape(names[0])}</text>'
        f'<rect x="{frame.left + 60}" y="2" width="8" height="8" fill="{RESOLVED_COLOUR}"/>'
        f'<text x="{frame.left + 71}" y="10" class="legend">{escape(names[1])}</text>'
    )
    return _svg(frame, title, body, "bars")


def breakdown(
    title: str, items: Sequence[tuple[str, int]], *, colours: Mapping[str, str] | None = None
) -> Markup:
    """Horizontal bars with their numbers (e.g. open findings per severity or category)."""
    if not items:
        return Markup('<p class="chart-empty">Nothing open.</p>')
    row, label_width, bar_width = 18, 130, 240
    frame = Frame(width=label_width + bar_width + 70, height=row * len(items) + 6)
    top = max(n for _, n in items) or 1
    body = []
    for i, (name, n) in enumerate(items):
        y = 3 + i * row
        w = n / top * bar_width
        colour = (colours or {}).get(name, "#2457c5")
        body.append(
            f'<text x="{label_width - 6}" y="{y + 12}" class="tick" text-anchor="end">'
            f"{escape(name)}</text>"
            f'<rect class="bar" x="{label_width}" y="{y + 2}" width="{w:.1f}" height="{row - 6}" '
            f'fill="{colour}" data-value="{n}"><title>{escape(name)} {n:,}</title></rect>'
            f'<text x="{label_width + w + 4:.1f}" y="{y + 12}" class="num">{n:,}</text>'
        )
    return _svg(frame, title, body, "breakdown")


def trend_bars(values: Sequence[int], *, width: int = 96, height: int = 24) -> Markup:
    """A small bar trend with its scale (the top value) and the latest number beside it."""
    if not values:
        return Markup('<span class="muted">no scans</span>')
    top = max(values) or 1
    slot = width // len(values)
    bar = max(1, slot - 2)
    bars = "".join(
        f"M{i * slot} {height}v-{max(1, round(v / top * (height - 2)))}h{bar}V{height}z"
        for i, v in enumerate(values)
    )
    latest = values[-1]
    label = f"open findings after each of the last {len(values)} scans: " + ", ".join(
        str(v) for v in values
    )
    return Markup(  # noqa: S704 - numbers only
        f'<svg class="trend-bars" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" data-points="{len(values)}"><title>{label} (scale 0 to {top:,})'
        f'</title><path d="{bars}"/></svg>'
        f'<span class="trend-num">{latest:,}</span><span class="trend-scale">max {top:,}</span>'
    )
