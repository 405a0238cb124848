"""Line geometry for the dashboards: gaps break a line, the axis starts at zero and covers
the largest value, the last x label stays inside the chart."""

from __future__ import annotations

from pilothouse.console import linechart


def test_lines_break_at_gaps_and_scale_from_zero() -> None:
    buckets = [f"2025-01-31T{h:02d}:00" for h in range(5)]
    values = {buckets[0]: 10.0, buckets[1]: 20.0, buckets[3]: 80.0, buckets[4]: 40.0}
    chart = linechart.lines("t", buckets, [("p50", "p50", values)], lambda v: f"{v:g}")
    assert [p.points.count(",") for p in chart.paths] == [2, 2]  # 0-1, then 3-4
    assert len(chart.rects) == 4 and not chart.empty
    ys = [float(pt.split(",")[1]) for p in chart.paths for pt in p.points.split()]
    assert min(ys) >= 12.0  # the largest value stays inside the plot
    axis = [lbl.text for lbl in chart.labels if lbl.anchor == "end" and lbl.x < 70]
    assert axis[0] == "0" and float(axis[-1]) >= 80.0
    last = [lbl for lbl in chart.labels if lbl.text == "04:00"]
    assert last and last[0].anchor == "end"
    assert chart.legend == (("p50", "p50"),)


def test_no_values_is_an_empty_chart_with_its_message() -> None:
    chart = linechart.lines("t", ["2025-01-31"], [("p50", "p50", {})], str, "nothing here")
    assert chart.empty and chart.empty_text == "nothing here" and chart.legend == ()
    assert linechart.short_bucket("2025-01-31T00:00") == "01-31 00:00"
    assert linechart.short_bucket("2025-01-31") == "01-31"
