"""Span waterfall geometry: spans in tree order, each placed on the trace's time axis.

Positions are on a 0..SCALE axis that the template draws into a stretched
SVG, one row per span; events (first token, guard actions) become marks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pilothouse.console.formatting import ms

SCALE = 1000.0
MIN_WIDTH = 2.0
TICKS = 4


@dataclass(frozen=True, slots=True)
class Mark:
    x: float
    name: str
    offset_ms: float


@dataclass(frozen=True, slots=True)
class Bar:
    span_id: str
    name: str
    depth: int
    source: str
    kind: str
    status: str
    status_message: str | None
    offset_ms: float
    duration_ms: float
    x: float
    width: float
    marks: tuple[Mark, ...]
    attributes: Mapping[str, Any]
    events: tuple[Mapping[str, Any], ...]

    @property
    def css(self) -> str:
        if self.status == "error":
            return "bar-error"
        return "bar-app" if self.source == "app" else "bar-gateway"


@dataclass(frozen=True, slots=True)
class Waterfall:
    bars: tuple[Bar, ...]
    total_ms: float
    ticks: tuple[tuple[float, str], ...]


def tree_order(spans: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], int]]:
    """Depth-first, siblings by start time; orphans (parent not stored) start new roots."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    for span in spans:
        parent = span.get("parent_span_id")
        key = parent if parent in ids and parent != span["span_id"] else None
        children.setdefault(key, []).append(span)
    for group in children.values():
        group.sort(key=lambda s: (int(s["start_ns"]), str(s["name"])))
    out: list[tuple[Mapping[str, Any], int]] = []
    seen: set[str] = set()

    def visit(span: Mapping[str, Any], depth: int) -> None:
        stack = [(span, depth)]
        while stack:
            node, level = stack.pop()
            if node["span_id"] in seen:
                continue
            seen.add(node["span_id"])
            out.append((node, level))
            kids = children.get(node["span_id"], [])
            stack.extend((kid, level + 1) for kid in reversed(kids))

    for root in children.get(None, []):
        visit(root, 0)
    leftovers = sorted(
        (s for s in spans if s["span_id"] not in seen), key=lambda s: int(s["start_ns"])
    )
    for span in leftovers:  # only spans caught in a parent cycle remain
        visit(span, 0)
    return out


def _events(span: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    events = span.get("events")
    if not isinstance(events, list):
        return ()
    return tuple(e for e in events if isinstance(e, Mapping))


def build(spans: Sequence[Mapping[str, Any]]) -> Waterfall:
    if not spans:
        return Waterfall((), 0.0, ())
    start = min(int(s["start_ns"]) for s in spans)
    end = max(max(int(s["end_ns"]), int(s["start_ns"])) for s in spans)
    total = max(end - start, 1)

    def x_of(ns: int) -> float:
        return round(min(max(ns - start, 0), total) / total * SCALE, 2)

    bars = []
    for span, depth in tree_order(spans):
        s_ns = int(span["start_ns"])
        e_ns = max(int(span["end_ns"]), s_ns)
        x = x_of(s_ns)
        width = max(x_of(e_ns) - x, MIN_WIDTH)
        events = _events(span)
        marks = tuple(
            Mark(
                x_of(int(e["time_ns"])),
                str(e.get("name") or "event"),
                (int(e["time_ns"]) - start) / 1e6,
            )
            for e in events
            if isinstance(e.get("time_ns"), int)
        )
        attrs = span.get("attributes")
        bars.append(
            Bar(
                span_id=str(span["span_id"]),
                name=str(span["name"]),
                depth=depth,
                source=str(span.get("source") or "gateway"),
                kind=str(span.get("kind") or "internal"),
                status=str(span.get("status") or "unset"),
                status_message=span.get("status_message"),
                offset_ms=(s_ns - start) / 1e6,
                duration_ms=(e_ns - s_ns) / 1e6,
                x=min(x, SCALE - MIN_WIDTH),
                width=width,
                marks=marks,
                attributes=attrs if isinstance(attrs, Mapping) else {},
                events=events,
            )
        )
    total_ms = total / 1e6
    ticks = tuple((SCALE * i / TICKS, ms(total_ms * i / TICKS)) for i in range(TICKS + 1))
    return Waterfall(tuple(bars), total_ms, ticks)
