"""Chart geometry: scales, bar placement, stacking and labels."""

from __future__ import annotations

import pytest

from pilothouse.console import charts
from pilothouse.console.charts import Point, Segment
from pilothouse.console.views import compact, usd_axis


@pytest.mark.parametrize(
    ("value", "integer", "step"),
    [
        (0, False, 1.0),
        (2, True, 1.0),  # counts: whole steps only
        (5, True, 2.0),
        (3000, True, 800.0),
        (0.45, False, 0.15),
        (1.0, False, 0.25),
        (0.000027, False, 0.000008),
    ],
)
def test_axis_steps_are_round_and_cover_the_maximum(
    value: float, integer: bool, step: float
) -> None:
    got = charts.axis_step(value, integer=integer)
    assert got == pytest.approx(step)
    assert got * charts.TICKS >= value


def test_usd_tick_labels_show_the_digits_the_step_needs() -> None:
    assert usd_axis(0.15)(0.3) == "$0.30"
    assert usd_axis(0.0015)(0.003) == "$0.0030"
    assert usd_axis(250.0)(1000.0) == "$1,000.00"


def _day(label: str, ok: float, err: float) -> Point:
    return Point(
        label, (Segment("ok", "Succeeded", ok, str(ok)), Segment("error", "Failed", err, str(err)))
    )


def test_columns_stack_segments_in_proportion_inside_the_plot() -> None:
    chart = charts.columns(
        "Requests", [_day("d1", 2, 2), _day("d2", 0, 0), _day("d3", 1, 0)], compact, integer=True
    )
    base = charts.COL_HEIGHT - charts.COL_BOTTOM
    plot_h = base - charts.COL_TOP
    d1_ok, d1_err, d3_ok = chart.rects
    assert (d1_ok.series, d1_err.series) == ("ok", "error")
    assert d1_ok.y + d1_ok.height == pytest.approx(base)  # stacked from the axis up
    assert d1_err.y + d1_err.height == pytest.approx(d1_ok.y)
    assert d1_ok.height == pytest.approx(d3_ok.height * 2, rel=0.01)
    assert d1_ok.height + d1_err.height == pytest.approx(plot_h)  # 4 is the top of a 0..4 axis
    assert d1_ok.x < d3_ok.x
    for rect in chart.rects:
        assert rect.x >= charts.COL_LEFT and rect.x + rect.width <= charts.WIDTH - charts.COL_RIGHT
    assert d1_err.title == "d1 · Failed: 2"
    ticks = [label.text for label in chart.labels if label.anchor == "end"]
    assert ticks == ["0", "1", "2", "3", "4"]
    assert chart.legend == (("ok", "Succeeded"), ("error", "Failed"))


def test_columns_thin_out_day_labels_but_keep_every_bar() -> None:
    days = [_day(f"2025-01-{i:02d}", i, 0) for i in range(1, 31)]
    chart = charts.columns("Requests", days, str, integer=True)
    assert len(chart.rects) == 30
    day_labels = [label for label in chart.labels if label.anchor == "middle"]
    assert 1 < len(day_labels) <= charts.MAX_X_LABELS


def test_a_chart_without_values_is_empty() -> None:
    assert charts.columns("Cost", [_day("d1", 0, 0)], str).empty
    assert charts.columns("Cost", [], str).empty
    assert charts.rows("Cost", []).empty


def test_rows_rank_bars_by_value_with_exact_labels() -> None:
    points = [
        Point(
            "a-very-long-model-name-that-goes-on-and-on",
            (Segment("cost", "Cost", 3.0, "$3.000000000001"),),
        ),
        Point("small", (Segment("cost", "Cost", 1.0, "$1.00"),)),
    ]
    chart = charts.rows("Cost by model", points)
    big, small = chart.rects
    assert big.width == pytest.approx(small.width * 3, rel=0.001)
    assert big.y < small.y
    texts = [label.text for label in chart.labels]
    assert "$3.000000000001" in texts
    assert any(t.endswith("…") and len(t) == charts.MAX_LABEL_CHARS for t in texts)
    assert big.title.startswith("a-very-long-model-name-that-goes-on-and-on")  # full text on hover
