"""Several series over the same time buckets as lines (latency p50/p95/p99, TTFT) on a zero-
based y axis; a bucket without a value breaks its line instead of bridging the gap.

Geometry only, like console/charts.py: the template renders it with autoescaping on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from pilothouse.console.charts import (
    COL_BOTTOM,
    COL_HEIGHT,
    COL_LEFT,
    COL_RIGHT,
    COL_TOP,
    MAX_X_LABELS,
    TICKS,
    WIDTH,
    Chart,
    Format,
    Label,
    Line,
    Polyline,
    Rect,
    axis_step,
)

Series = tuple[str, str, Mapping[str, float | None]]  # (css key, legend name, bucket → value)


def short_bucket(label: str) -> str:
    """``2025-01-31T14:00`` → ``14:00`` (``01-31 00:00`` at midnight); days → ``01-31``."""
    if "T" in label:
        day, hour = label.split("T", 1)
        return f"{day[5:]} {hour}" if hour == "00:00" else hour
    return label[5:]


def lines(
    title: str,
    buckets: Sequence[str],
    series: Sequence[Series],
    fmt: Format,
    empty_text: str = "No data in this range.",
) -> Chart:
    plot_w = WIDTH - COL_LEFT - COL_RIGHT
    plot_h = COL_HEIGHT - COL_TOP - COL_BOTTOM
    base_y = COL_TOP + plot_h
    known = [
        v for _, _, values in series for v in values.values() if v is not None and math.isfinite(v)
    ]
    step = axis_step(max(known, default=0.0))
    top = step * TICKS
    grid = [Line(COL_LEFT, base_y, WIDTH - COL_RIGHT, base_y, "axis")]
    labels = []
    for i in range(TICKS + 1):
        y = round(base_y - plot_h * i / TICKS, 2)
        if i:
            grid.append(Line(COL_LEFT, y, WIDTH - COL_RIGHT, y))
        labels.append(Label(COL_LEFT - 8, y + 4, fmt(step * i), "end"))
    count = len(buckets)
    slot = plot_w / max(count - 1, 1)
    every = max(1, math.ceil(count / MAX_X_LABELS))

    def x_of(i: int) -> float:
        return round(COL_LEFT + i * slot if count > 1 else COL_LEFT + plot_w / 2, 2)

    for i, label in enumerate(buckets):
        if i % every == 0:  # the last bucket sits on the right edge: its label ends there
            anchor = "end" if i == count - 1 and count > 1 else "middle"
            labels.append(Label(x_of(i), base_y + 18, short_bucket(label), anchor))
    rects: list[Rect] = []
    paths: list[Polyline] = []
    for key, name, values in series:
        runs: list[list[str]] = [[]]
        for i, label in enumerate(buckets):
            value = values.get(label)
            if value is None or not math.isfinite(value):
                runs.append([])
                continue
            x, y = x_of(i), round(base_y - plot_h * value / top, 2)
            runs[-1].append(f"{x},{y}")
            rects.append(Rect(x - 2, y - 2, 4, 4, key, f"{label} · {name}: {fmt(value)}"))
        paths += [Polyline(" ".join(run), key) for run in runs if len(run) > 1]
    legend = tuple((key, name) for key, name, _ in series) if known else ()
    return Chart(
        "trend", title, WIDTH, COL_HEIGHT, tuple(rects), tuple(labels), tuple(grid), legend,
        tuple(paths), empty_text,
    )  # fmt: skip
