"""Scores as OpenTelemetry ``gen_ai.evaluation.result`` events.

Tracing is not wired into pilothouse yet, so the events are built here and
stored with each case result (``Sample.events``); the telemetry exporter can
emit them later on the case's trace without re-scoring anything. Attribute
names follow the GenAI semantic conventions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pilothouse.evals.model import Sample, Verdict

EVENT_NAME = "gen_ai.evaluation.result"


def evaluation_event(
    verdict: Verdict, *, trace_id: str | None, response_id: str | None, at: datetime
) -> dict[str, Any]:
    attributes: dict[str, Any] = {"gen_ai.evaluation.name": verdict.scorer}
    if verdict.value is not None:
        attributes["gen_ai.evaluation.score.value"] = verdict.value
    if verdict.label is not None:
        attributes["gen_ai.evaluation.score.label"] = verdict.label
    if verdict.explanation:
        attributes["gen_ai.evaluation.explanation"] = verdict.explanation
    if response_id is not None:
        attributes["gen_ai.response.id"] = response_id
    if verdict.error is not None:
        attributes["error.type"] = "score_error"
        attributes["gen_ai.evaluation.explanation"] = verdict.error
    return {
        "name": EVENT_NAME,
        "timestamp": at.isoformat(),
        "trace_id": trace_id,
        "attributes": attributes,
    }


def sample_events(sample: Sample, at: datetime) -> list[dict[str, Any]]:
    """One event per verdict that was scored or errored (skips are not evaluations)."""
    response_id = sample.request_ids[-1] if sample.request_ids else None
    return [
        evaluation_event(v, trace_id=sample.trace_id, response_id=response_id, at=at)
        for v in sample.verdicts
        if v.skipped is None
    ]
