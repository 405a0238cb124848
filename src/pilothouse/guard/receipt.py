"""The enforcement receipt as trace data: one ``guard.enforcement`` span, one event per run.

Values never appear: an event carries the guard, segment, verdict, entity
types with counts, score and latency — enough to prove what ran and decided.
"""

from __future__ import annotations

from typing import Any

import orjson

from pilothouse.guard.state import SEVERITY, GuardState


def verdict_of(state: GuardState) -> str:
    worst = "pass"
    for e in state.receipt:
        if SEVERITY.get(e["verdict"], 0) > SEVERITY.get(worst, 0):
            worst = e["verdict"]
    return worst


def span_attributes(state: GuardState) -> dict[str, Any]:
    return {
        "pilothouse.guard.policy": state.policy,
        "pilothouse.guard.verdict": verdict_of(state),
        "pilothouse.guard.runs": len(state.receipt),
        "pilothouse.guard.summary": state.summary(),
        "pilothouse.guard.cacheable": not state.nocache,
    }


def span_events(state: GuardState, time_ns: int) -> list[dict[str, Any]]:
    events = []
    for e in state.receipt:
        attrs: dict[str, Any] = {
            f"pilothouse.guard.{k}": v for k, v in e.items() if k != "entities" and v is not None
        }
        attrs["pilothouse.guard.entities"] = orjson.dumps(e["entities"]).decode()
        events.append({"name": "guard.run", "time_ns": time_ns, "attributes": attrs})
    return events
