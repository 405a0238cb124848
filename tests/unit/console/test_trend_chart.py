"""The trend chart: a gap where a guard had no statistic yet, and the boundary drawn."""

from __future__ import annotations

from pilothouse.console import charts


def test_trend_breaks_the_line_at_gaps_and_draws_the_boundary() -> None:
    chart = charts.trend(
        "g", [("a", None), ("b", 0.1), ("c", 0.2), ("d", None), ("e", 0.3), ("f", 0.5)],
        str, boundary=0.4,
    )  # fmt: skip
    assert [len(p.points.split()) for p in chart.paths] == [2, 2]
    assert len(chart.rects) == 4  # one marker per known value
    (boundary,) = [line for line in chart.lines if line.role == "boundary"]
    ys = {r.title: r.y + 2 for r in chart.rects}
    assert ys["e: 0.3"] > boundary.y1 > ys["f: 0.5"]  # SVG y grows downwards


def test_trend_without_any_value_is_empty() -> None:
    chart = charts.trend("g", [("a", None)], str, boundary=0.1)
    assert chart.empty and chart.legend == ()
