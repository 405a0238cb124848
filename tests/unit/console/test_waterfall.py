"""Waterfall: tree order, orphans, cycles and bar geometry on the trace's time axis."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.console import waterfall
from tests.unit.console.sample import MS, traced_spans


def span(span_id: str, parent: str | None, start: int, end: int, **extra: Any) -> dict[str, Any]:
    return {
        "span_id": span_id,
        "parent_span_id": parent,
        "name": span_id,
        "start_ns": start,
        "end_ns": end,
        **extra,
    }


def test_spans_come_in_tree_order_with_depths() -> None:
    spans = [
        span("child-late", "root", 50, 60),
        span("root", None, 0, 100),
        span("grandchild", "child-early", 15, 18),
        span("child-early", "root", 10, 20),
    ]
    order = [(s["span_id"], depth) for s, depth in waterfall.tree_order(spans)]
    assert order == [("root", 0), ("child-early", 1), ("grandchild", 2), ("child-late", 1)]


def test_orphans_and_cycles_are_still_shown_once() -> None:
    spans = [
        span("app-side", "not-stored", 0, 10),
        span("a", "b", 20, 30),
        span("b", "a", 25, 28),
        span("self", "self", 40, 50),
    ]
    order = [s["span_id"] for s, _ in waterfall.tree_order(spans)]
    assert sorted(order) == ["a", "app-side", "b", "self"]
    assert order[0] == "app-side"


def test_bars_are_placed_by_start_and_length_on_one_axis() -> None:
    built = waterfall.build(traced_spans(10_000 * MS))
    by_name = {}
    for bar in built.bars:
        by_name.setdefault(bar.name, []).append(bar)
    retrieval = by_name["retrieval"][0]
    root = by_name["chat support-bot"][0]
    first, second = by_name["chat gpt-4o-mini"]
    assert built.total_ms == pytest.approx(1620.0)  # from the app's retrieval to its tool call
    assert retrieval.x == 0 and retrieval.source == "app" and retrieval.css == "bar-app"
    assert root.x == pytest.approx(120 / 1620 * 1000, abs=0.01)
    assert root.width == pytest.approx(1450 / 1620 * 1000, abs=0.02)
    assert first.css == "bar-error" and second.css == "bar-gateway"
    assert first.x < second.x and first.depth == second.depth == 1
    (mark,) = root.marks
    assert mark.name == "gen_ai.first_token" and mark.offset_ms == pytest.approx(1020.0)
    assert built.ticks[0] == (0.0, "0.0 ms") and built.ticks[-1][0] == 1000.0
    for bar in built.bars:
        assert bar.x >= 0 and bar.x + bar.width <= 1000.0 + waterfall.MIN_WIDTH
        assert bar.width >= waterfall.MIN_WIDTH  # a 0.5 ms span is still visible


def test_no_spans_no_waterfall() -> None:
    assert waterfall.build([]).bars == ()
