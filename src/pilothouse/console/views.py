"""View models: what a page shows, computed from query results (no I/O here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pilothouse.console import charts, waterfall
from pilothouse.console.charts import Chart, Point, Segment
from pilothouse.console.formatting import count, usd, utc
from pilothouse.console.queries import RequestRecord
from pilothouse.console.reconstruct import Reconstruction, reconstruct
from pilothouse.console.usage import Group, Totals
from pilothouse.limits.money import PICO_PER_USD

TOP_GROUPS = 12
_META_FIELDS = (
    ("user", "user_id", "User"),
    ("session", "session_id", "Session"),
    ("feature", "feature", "Feature"),
    ("team", "team", "Team"),
    ("task_id", "task_id", "Task"),
)


@dataclass(slots=True)
class Detail:
    summary: dict[str, Any]
    context: list[tuple[str, str]]
    metadata: Mapping[str, Any]
    reconstruction: Reconstruction
    waterfall: waterfall.Waterfall
    has_trace: bool
    feedback: list[dict[str, Any]]


def _pick(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def detail(record: RequestRecord, key_names: Mapping[str, str]) -> Detail:
    usage = record.usage or {}
    trace = record.trace or {}
    key_id = _pick(usage.get("key_id"), trace.get("key_id"))
    summary = {
        "request_id": _pick(usage.get("request_id"), trace.get("request_id")),
        "trace_id": trace.get("trace_id")
        or (record.spans[0]["trace_id"] if record.spans else None),
        "created_at": utc(_pick(usage.get("created_at"), trace.get("created_at"))),
        "key_id": key_id,
        "key_name": key_names.get(key_id) if key_id else None,
        "alias": _pick(usage.get("alias"), trace.get("alias")),
        "provider": _pick(usage.get("provider"), trace.get("provider")),
        "upstream_model": _pick(usage.get("upstream_model"), trace.get("upstream_model")),
        "status": _pick(usage.get("status"), trace.get("status")),
        "error_type": _pick(usage.get("error_type"), trace.get("error_type")),
        "latency_ms": _pick(usage.get("latency_ms"), trace.get("duration_ms")),
        "ttft_ms": _pick(usage.get("ttft_ms"), trace.get("ttft_ms")),
        "attempts": _pick(usage.get("attempts"), trace.get("attempts")),
        "input_tokens": _pick(usage.get("input_tokens"), trace.get("input_tokens")),
        "output_tokens": _pick(usage.get("output_tokens"), trace.get("output_tokens")),
        "cached_input_tokens": usage.get("cached_input_tokens"),
        "estimated": bool(usage.get("estimated")),
        "cost_pico": _pick(usage.get("cost_pico"), trace.get("cost_pico")),
        "cache_hit": bool(_pick(usage.get("cache_hit"), trace.get("cache_hit"))),
        "stream": usage.get("stream"),
        "prompt_name": trace.get("prompt_name"),
        "prompt_version": trace.get("prompt_version"),
    }
    meta_raw = _pick(trace.get("metadata"), usage.get("metadata"))
    meta: Mapping[str, Any] = meta_raw if isinstance(meta_raw, Mapping) else {}
    context = []
    for meta_key, column, label in _META_FIELDS:
        value = _pick(trace.get(column), meta.get(meta_key))
        if value not in (None, ""):
            context.append((label, str(value)))
    return Detail(
        summary=summary,
        context=context,
        metadata=meta,
        reconstruction=reconstruct(trace.get("content"), record.spans),
        waterfall=waterfall.build(record.spans),
        has_trace=bool(record.trace or record.spans),
        feedback=record.feedback,
    )


# -- charts ----------------------------------------------------------------------------------


def usd_axis(step_usd: float) -> charts.Format:
    """Tick labels with as many decimals as the tick step needs (figures elsewhere stay exact)."""
    decimals = 2
    while decimals < 10 and abs(round(step_usd, decimals) - step_usd) > step_usd * 1e-6:
        decimals += 1
    return lambda v: f"${v:,.{decimals}f}"


def compact(value: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}" if value != int(value) else str(int(value))


def _usd_float(pico: int) -> float:
    return pico / PICO_PER_USD


def _short_day(day: str) -> str:
    return day[5:] if len(day) == 10 else day


def requests_per_day(days: Sequence[tuple[str, Totals]]) -> Chart:
    points = [
        Point(
            day,
            (
                Segment("ok", "Succeeded", t.requests - t.errors, count(t.requests - t.errors)),
                Segment("error", "Failed", t.errors, count(t.errors)),
            ),
            _short_day(day),
        )
        for day, t in days
    ]
    return charts.columns("Requests per day (UTC)", points, compact, integer=True)


def tokens_per_day(days: Sequence[tuple[str, Totals]]) -> Chart:
    points = [
        Point(
            day,
            (
                Segment("input", "Input tokens", t.input_tokens, count(t.input_tokens)),
                Segment("output", "Output tokens", t.output_tokens, count(t.output_tokens)),
            ),
            _short_day(day),
        )
        for day, t in days
    ]
    return charts.columns("Tokens per day (UTC)", points, compact, integer=True)


def cost_per_day(days: Sequence[tuple[str, Totals]]) -> Chart:
    points = [
        Point(
            day,
            (Segment("cost", "Cost", _usd_float(t.cost_pico), usd(t.cost_pico)),),
            _short_day(day),
        )
        for day, t in days
    ]
    step = charts.axis_step(max((p.total for p in points), default=0.0))
    return charts.columns("Cost per day (UTC)", points, usd_axis(step))


def _top(groups: Sequence[Group], metric: str) -> list[tuple[str, int]]:
    def value(t: Totals) -> int:
        return t.cost_pico if metric == "cost" else t.tokens if metric == "tokens" else t.requests

    ranked = sorted(groups, key=lambda g: value(g.totals), reverse=True)
    out = [(g.label, value(g.totals)) for g in ranked[:TOP_GROUPS]]
    rest = sum(value(g.totals) for g in ranked[TOP_GROUPS:])
    if rest:
        out.append((f"{len(ranked) - TOP_GROUPS} more", rest))
    return out


def ranked(title: str, groups: Sequence[Group], metric: str) -> Chart:
    points = []
    for label, value in _top(groups, metric):
        if metric == "cost":
            seg = Segment("cost", "Cost", _usd_float(value), usd(value))
        else:
            seg = Segment(metric, metric.capitalize(), float(value), count(value))
        points.append(Point(label, (seg,)))
    return charts.rows(title, points)
