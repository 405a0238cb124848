"""Chart geometry for server-rendered inline SVG: stacked columns, ranked bars, trend lines.

Only numbers and plain strings come out of here; the template turns them into
SVG elements with autoescaping on, so a label such as ``<script>`` is text.
Values drive geometry only: the exact figures go into titles and tables.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

WIDTH = 600.0
COL_HEIGHT = 230.0
COL_LEFT, COL_RIGHT, COL_TOP, COL_BOTTOM = 70.0, 10.0, 12.0, 30.0
ROW_HEIGHT = 24.0
ROW_LABEL_W, ROW_VALUE_W, ROW_PAD = 176.0, 120.0, 8.0
MAX_X_LABELS = 8
MAX_LABEL_CHARS = 22
TICKS = 4

Format = Callable[[float], str]


@dataclass(frozen=True, slots=True)
class Segment:
    series: str  # CSS class suffix and legend key
    name: str  # legend text
    value: float
    text: str  # the exact figure, for the tooltip


@dataclass(frozen=True, slots=True)
class Point:
    label: str
    segments: tuple[Segment, ...]
    short: str = ""

    @property
    def total(self) -> float:
        return sum(max(s.value, 0.0) for s in self.segments)


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    series: str
    title: str


@dataclass(frozen=True, slots=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"
    role: str = "axis"  # axis | category | value


@dataclass(frozen=True, slots=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    role: str = "grid"  # grid | axis


@dataclass(frozen=True, slots=True)
class Polyline:
    points: str  # "x,y x,y ..." for <polyline points>
    series: str


@dataclass(frozen=True, slots=True)
class Chart:
    kind: str  # "columns" | "rows" | "trend"
    title: str
    width: float
    height: float
    rects: tuple[Rect, ...]
    labels: tuple[Label, ...]
    lines: tuple[Line, ...]
    legend: tuple[tuple[str, str], ...]
    paths: tuple[Polyline, ...] = ()
    empty_text: str = "No data in this range."

    @property
    def empty(self) -> bool:
        return not self.rects and not self.paths


_STEPS = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def axis_step(value: float, ticks: int = TICKS, *, integer: bool = False) -> float:
    """A round tick step so that ``ticks`` steps cover ``value`` (1 when there is nothing).

    Integer axes (request counts) only get whole steps: no "1.5 requests" gridline.
    """
    if value <= 0 or not math.isfinite(value):
        return 1.0
    raw = value / ticks
    base = 10.0 ** math.floor(math.log10(raw))
    for step in _STEPS:
        candidate = step * base
        if candidate >= raw * (1 - 1e-9) and (not integer or candidate == int(candidate)):
            return max(candidate, 1.0) if integer else candidate
    return max(10.0 * base, 1.0) if integer else 10.0 * base


def _legend(points: Sequence[Point]) -> tuple[tuple[str, str], ...]:
    seen: dict[str, str] = {}
    for point in points:
        for seg in point.segments:
            seen.setdefault(seg.series, seg.name)
    return tuple(seen.items()) if len(seen) > 1 else ()


def columns(title: str, points: Sequence[Point], fmt: Format, *, integer: bool = False) -> Chart:
    """Stacked vertical bars, one per point (e.g. per day), with a labelled y axis."""
    plot_w = WIDTH - COL_LEFT - COL_RIGHT
    plot_h = COL_HEIGHT - COL_TOP - COL_BOTTOM
    base_y = COL_TOP + plot_h
    step = axis_step(max((p.total for p in points), default=0.0), integer=integer)
    top = step * TICKS
    lines = [Line(COL_LEFT, base_y, WIDTH - COL_RIGHT, base_y, "axis")]
    labels = []
    for i in range(TICKS + 1):
        value = step * i
        y = base_y - plot_h * i / TICKS
        if i:
            lines.append(Line(COL_LEFT, y, WIDTH - COL_RIGHT, y))
        labels.append(Label(COL_LEFT - 8, y + 4, fmt(value), "end"))
    rects: list[Rect] = []
    count = len(points)
    if count and any(p.total > 0 for p in points):
        slot = plot_w / count
        bar_w = min(slot * 0.72, 42.0)
        every = max(1, math.ceil(count / MAX_X_LABELS))
        for i, point in enumerate(points):
            x = COL_LEFT + i * slot + (slot - bar_w) / 2
            y = base_y
            for seg in point.segments:
                if seg.value <= 0:
                    continue
                height = max(plot_h * seg.value / top, 1.0)
                y -= height
                tip = f"{point.label} · {seg.name}: {seg.text}"
                rects.append(
                    Rect(
                        round(x, 2), round(y, 2), round(bar_w, 2), round(height, 2), seg.series, tip
                    )
                )
            if i % every == 0:
                labels.append(
                    Label(round(x + bar_w / 2, 2), base_y + 18, point.short or point.label)
                )
    return Chart(
        "columns",
        title,
        WIDTH,
        COL_HEIGHT,
        tuple(rects),
        tuple(labels),
        tuple(lines),
        _legend(points),
    )


def _clip(text: str) -> str:
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 1] + "…"


def rows(title: str, points: Sequence[Point]) -> Chart:
    """Ranked horizontal bars: a category label, its bar and its exact value."""
    height = ROW_HEIGHT * len(points) + 2 * ROW_PAD
    left = ROW_LABEL_W + ROW_PAD
    plot_w = WIDTH - left - ROW_VALUE_W
    top = max((p.total for p in points), default=0.0) or 1.0
    rects: list[Rect] = []
    labels: list[Label] = []
    lines = [Line(left, ROW_PAD, left, height - ROW_PAD, "axis")] if points else []
    for i, point in enumerate(points):
        y = ROW_PAD + i * ROW_HEIGHT
        mid = y + ROW_HEIGHT / 2 + 4
        labels.append(Label(ROW_LABEL_W, mid, _clip(point.label), "end", "category"))
        x = left
        for seg in point.segments:
            if seg.value <= 0:
                continue
            width = max(plot_w * seg.value / top, 1.0)
            rects.append(
                Rect(
                    round(x, 2),
                    y + 5,
                    round(width, 2),
                    ROW_HEIGHT - 10,
                    seg.series,
                    f"{point.label}: {seg.text}",
                )
            )
            x += width
        text = (
            " + ".join(s.text for s in point.segments)
            if len(point.segments) > 1
            else (point.segments[0].text if point.segments else "")
        )
        labels.append(Label(round(x + 6, 2), mid, text, "start", "value"))
    return Chart(
        "rows",
        title,
        WIDTH,
        max(height, 2 * ROW_PAD),
        tuple(rects),
        tuple(labels),
        tuple(lines),
        _legend(points),
    )


def trend(
    title: str,
    points: Sequence[tuple[str, float | None]],
    fmt: Format,
    *,
    boundary: float | None = None,
    series: str = "statistic",
    boundary_name: str = "boundary",
    empty_text: str = "No data in this range.",
) -> Chart:
    """A value over time (``(label, value)``, gaps where None) against a fixed boundary line.

    The y axis spans the values and the boundary, so the distance between the two
    (how close a guard is to firing) is what the eye reads.
    """
    plot_w = WIDTH - COL_LEFT - COL_RIGHT
    plot_h = COL_HEIGHT - COL_TOP - COL_BOTTOM
    base_y = COL_TOP + plot_h
    known = [v for _, v in points if v is not None and math.isfinite(v)]
    span = known + ([boundary] if boundary is not None else [])
    lo, hi = (min(span), max(span)) if span else (0.0, 1.0)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.1 or 1.0
    lo, hi = lo - pad, hi + pad

    def y_of(value: float) -> float:
        return round(base_y - plot_h * (value - lo) / (hi - lo), 2)

    lines = [Line(COL_LEFT, base_y, WIDTH - COL_RIGHT, base_y, "axis")]
    labels = [
        Label(COL_LEFT - 8, y_of(lo + (hi - lo) * i / TICKS) + 4, fmt(lo + (hi - lo) * i / TICKS),
              "end")
        for i in range(TICKS + 1)
    ]  # fmt: skip
    count = len(points)
    slot = plot_w / max(count - 1, 1)
    every = max(1, math.ceil(count / MAX_X_LABELS))
    rects: list[Rect] = []
    runs: list[list[str]] = [[]]
    for i, (label, value) in enumerate(points):
        x = round(COL_LEFT + i * slot if count > 1 else COL_LEFT + plot_w / 2, 2)
        if i % every == 0:
            labels.append(Label(x, base_y + 18, label))
        if value is None or not math.isfinite(value):
            runs.append([])
            continue
        y = y_of(value)
        runs[-1].append(f"{x},{y}")
        rects.append(Rect(x - 2, y - 2, 4, 4, series, f"{label}: {fmt(value)}"))
    paths = [Polyline(" ".join(run), series) for run in runs if len(run) > 1]
    legend: list[tuple[str, str]] = [(series, series)]
    if boundary is not None:
        lines.append(Line(COL_LEFT, y_of(boundary), WIDTH - COL_RIGHT, y_of(boundary), "boundary"))
        legend.append(("boundary", boundary_name))
    return Chart(
        "trend", title, WIDTH, COL_HEIGHT, tuple(rects), tuple(labels), tuple(lines),
        tuple(legend) if known else (), tuple(paths), empty_text,
    )  # fmt: skip
