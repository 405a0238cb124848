"""Telemetry endpoints: /metrics, the OTLP receiver, trace reads and SLO status."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.costs.usage_query import parse_time
from pilothouse.gateway import admission
from pilothouse.gateway.http_errors import error_response
from pilothouse.gateway.pipeline import new_request_id
from pilothouse.gateway.routes_admin import admin, principal_of, require_scope
from pilothouse.gateway.routes_openai import json_response, read_body
from pilothouse.gateway.runtime import Runtime
from pilothouse.inputs import JsonLimits, query_int
from pilothouse.telemetry.otlp_receive import parse_request, span_rows
from pilothouse.telemetry.trace_query import MAX_LIMIT, get_trace, list_traces


async def metrics(request: Request) -> Response:
    """Prometheus exposition; needs the admin key or a key with the ``metrics`` scope."""
    rt: Runtime = request.app.state.runtime
    try:
        await require_scope(rt, request, "metrics")
    except Exception as exc:
        return error_response(exc, new_request_id())
    rt.telemetry.refresh_gauges({"ledger": rt.ledger.depth})
    body, content_type = rt.telemetry.metrics.render()
    return Response(body, media_type=content_type)


async def receive_traces(request: Request) -> Response:
    """OTLP/HTTP: application spans join the request traces they share a trace id with."""
    rt: Runtime = request.app.state.runtime
    request_id = new_request_id()
    try:
        await admission.authenticate(rt, request)
        limits = JsonLimits.of(rt.settings.server)
        raw = await read_body(request, limits.max_bytes)
        content_type = request.headers.get("content-type", "application/x-protobuf")
        rows = span_rows(parse_request(raw, content_type, limits), limits)
    except Exception as exc:
        return error_response(exc, request_id)
    rt.telemetry.traces.record_app_spans(rows)
    if "json" in content_type:
        return json_response({"partialSuccess": {}}, {"x-request-id": request_id})
    return Response(b"", media_type="application/x-protobuf", headers={"x-request-id": request_id})


def _limit(raw: str | None) -> int:
    if raw is None:
        return 50
    return query_int(raw, "limit", 1, MAX_LIMIT)


async def traces_list(rt: Runtime, request: Request) -> Response:
    q = request.query_params
    await rt.telemetry.traces.flush()
    filters = {
        name: q.get(name)
        for name in ("key_id", "model", "user", "feature", "team", "task_id", "provider")
        if q.get(name)
    }
    if "user" in filters:  # stored as its pseudonym when it holds personal data
        filters["user"] = rt.metadata_privacy.stored_value("user", filters["user"])
    result = await list_traces(
        rt.engine,
        filters=filters,
        status=q.get("status") or None,
        since=parse_time(q.get("since"), "since"),
        until=parse_time(q.get("until"), "until"),
        limit=_limit(q.get("limit")),
        cursor=q.get("cursor") or None,
    )
    return json_response(result)


async def trace_detail(rt: Runtime, request: Request) -> Response:
    await rt.ledger.flush()
    await rt.telemetry.traces.flush()
    trace = await get_trace(rt.engine, request.path_params["ident"])
    if principal_of(request).redacted:
        trace = redact_trace(trace)
    return json_response(trace)


REDACTED = "[redacted for viewer role]"
# Events that by construction never hold content: the guard receipt records guard,
# segment label, verdict, entity types and counts, never a value.
_VALUE_FREE = frozenset({"guard.run"})


def redact_trace(trace: dict[str, Any]) -> dict[str, Any]:
    """A viewer's copy of a trace: timings, ids and costs, no prompt or completion text."""
    out = {**trace, "request": REDACTED, "response": REDACTED}
    out["spans"] = [
        {**s, "events": [e for e in s.get("events") or [] if e.get("name") in _VALUE_FREE],
         "attributes": _no_content(s)}
        for s in trace["spans"]
    ]  # fmt: skip
    out["feedback"] = [{**f, "comment": None} for f in trace.get("feedback") or []]
    out["evaluations"] = [{**e, "explanation": None} for e in trace.get("evaluations") or []]
    return out


def _no_content(span: dict[str, Any]) -> dict[str, Any]:
    attrs = span.get("attributes") or {}
    return {
        k: v
        for k, v in attrs.items()
        if not any(
            w in k for w in ("content", "prompt", "completion", "message", "input", "output")
        )
        or isinstance(v, int | float)
    }


async def slo_status(rt: Runtime, request: Request) -> Response:
    statuses: list[Any] = rt.telemetry.slo.status()
    firing = [msgspec.to_builtins(a) for a in rt.telemetry.alerts.firing]
    return json_response({"data": msgspec.to_builtins(statuses), "firing": firing})


def routes() -> list[Route]:
    return [
        Route("/metrics", metrics, methods=["GET"]),
        Route("/v1/traces", receive_traces, methods=["POST"]),
        Route("/admin/traces", admin(traces_list, "traces.read"), methods=["GET"]),
        Route("/admin/traces/{ident}", admin(trace_detail, "traces.read"), methods=["GET"]),
        Route("/admin/slo", admin(slo_status, "slo.read"), methods=["GET"]),
    ]
