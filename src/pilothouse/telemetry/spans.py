"""Turn one finished request into a trace row and its span rows.

Pure functions of the :class:`RequestContext`: they run in the trace writer's
background task, never on the request path. Attribute names follow the
OpenTelemetry GenAI semantic conventions; gateway specifics use ``pilothouse.*``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from pilothouse.gateway.context import RequestContext
from pilothouse.limits.money import pico_to_str
from pilothouse.telemetry.tracecontext import new_span_id

Row = dict[str, Any]
_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "seed": "gen_ai.request.seed",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
}
METADATA_COLUMNS = {
    "user": "user_id",
    "session": "session_id",
    "feature": "feature",
    "team": "team",
    "task_id": "task_id",
}


def _span(
    ctx: RequestContext,
    name: str,
    kind: str,
    start: int,
    end: int,
    *,
    parent: str | None,
    status: str = "ok",
    message: str | None = None,
    attributes: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    span_id: str | None = None,
) -> Row:
    return {
        "trace_id": ctx.trace_id,
        "span_id": span_id or new_span_id(),
        "parent_span_id": parent,
        "name": name,
        "kind": kind,
        "source": "gateway",
        "start_ns": start,
        "end_ns": max(end, start),
        "status": status,
        "status_message": message[:500] if message else None,
        "attributes": attributes or {},
        "events": events or [],
    }


def _finish_reasons(body: dict[str, Any] | None) -> list[str]:
    if not body:
        return []
    reasons = []
    for choice in body.get("choices") or []:
        if isinstance(choice, dict) and choice.get("finish_reason"):
            reasons.append(str(choice["finish_reason"]))
    return reasons


def _metadata(ctx: RequestContext) -> dict[str, Any]:
    key_meta = ctx.key.metadata if ctx.key else None
    if ctx.metadata_protected and ctx.stored_key_metadata is not None:
        key_meta = ctx.stored_key_metadata
    meta = dict(key_meta) if key_meta else {}
    meta.update(ctx.metadata or {})
    return meta


# OpenTelemetry GenAI operation names by gateway endpoint (anything else is a chat).
OPERATIONS = {
    "embeddings": "embeddings",
    "completions": "text_completion",
    "moderations": "moderation",
}


def operation_name(endpoint: str) -> str:
    return OPERATIONS.get(endpoint, "chat")


def _rollout_attributes(ctx: RequestContext) -> dict[str, Any]:
    if ctx.rollout is None:
        return {}
    from pilothouse.gateway.rollout_routing import usage_fields

    rollout_id, arm = usage_fields(ctx)
    return {"pilothouse.rollout.id": rollout_id, "pilothouse.rollout.arm": arm}


def _cache_attributes(ctx: RequestContext) -> dict[str, Any]:
    """Semantic cache hits: the tier, the similarity and the entry that answered."""
    info = ctx.cache_info
    if not info or not ctx.cache_hit:
        return {}
    return {
        "pilothouse.cache.kind": info["kind"],
        "pilothouse.cache.similarity": info["similarity"],
        "pilothouse.cache.entry_id": info["entry_id"],
        "pilothouse.cache.tokens_saved": info["tokens_saved"],
    }


def _route_attributes(ctx: RequestContext) -> dict[str, Any]:
    """The routing decision (routing/policy.py RouteDecision) as span attributes."""
    d = ctx.route
    if d is None:
        return {}
    attrs: dict[str, Any] = {
        "pilothouse.route.policy": d.policy,
        "pilothouse.route.requested": d.requested,
        "pilothouse.route.rule": d.rule or "",
        "pilothouse.route.reason": d.reason,
        "pilothouse.route.alias": d.alias,
        "pilothouse.route.degraded": d.degraded,
    }
    if d.degraded:
        attrs["pilothouse.route.degrade_reason"] = d.degrade_reason or ""
    if d.steps:
        attrs["pilothouse.route.steps"] = orjson.dumps(d.steps).decode()
    return attrs


def root_attributes(ctx: RequestContext) -> dict[str, Any]:
    body = ctx.request_body or {}
    response = ctx.response_body or {}
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation_name(ctx.endpoint),
        "gen_ai.request.model": ctx.alias or "",
        "gen_ai.usage.input_tokens": ctx.usage.input_tokens,
        "gen_ai.usage.output_tokens": ctx.usage.output_tokens,
        "http.response.status_code": ctx.status,
        "pilothouse.request_id": ctx.request_id,
        "pilothouse.alias": ctx.alias or "",
        "pilothouse.cost_usd": pico_to_str(ctx.cost_pico),
        "pilothouse.cache_hit": ctx.cache_hit,
        **_cache_attributes(ctx),
        **_rollout_attributes(ctx),
        **_route_attributes(ctx),
        "pilothouse.attempts": ctx.attempt_count,
        "pilothouse.stream": ctx.stream,
        "pilothouse.usage_estimated": ctx.usage.estimated,
    }
    if ctx.provider:
        attrs["gen_ai.provider.name"] = ctx.provider
    if response.get("model"):
        attrs["gen_ai.response.model"] = str(response["model"])
    if response.get("id"):
        attrs["gen_ai.response.id"] = str(response["id"])
    reasons = _finish_reasons(response)
    if reasons:
        attrs["gen_ai.response.finish_reasons"] = reasons
    if ctx.usage.cached_input_tokens:
        attrs["gen_ai.usage.cached_input_tokens"] = ctx.usage.cached_input_tokens
    for param, attr in _PARAMS.items():
        value = body.get(param)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attrs[attr] = value
    if ctx.key is not None:
        attrs["pilothouse.key_id"] = ctx.key.id
    if ctx.error_type:
        attrs["error.type"] = ctx.error_type
    if ctx.ttft_s is not None:
        attrs["pilothouse.ttft_ms"] = round(ctx.ttft_s * 1000, 3)
    for name, value in _metadata(ctx).items():
        if isinstance(value, str | int | float | bool):
            attrs[f"pilothouse.metadata.{name}"] = value
    return attrs


def build_spans(ctx: RequestContext, end_mark: float) -> list[Row]:
    """Root span, admission, cache lookup and one span per upstream attempt."""
    root_id = new_span_id()
    end = ctx.wall_ns(end_mark)
    failed = ctx.status >= 400
    events = []
    if ctx.stream and ctx.ttft_s is not None:
        events.append(
            {
                "name": "gen_ai.first_token",
                "time_ns": ctx.start_ns + int(ctx.ttft_s * 1e9),
                "attributes": {"pilothouse.ttft_ms": round(ctx.ttft_s * 1000, 3)},
            }
        )
    op = operation_name(ctx.endpoint)
    rows = [
        _span(
            ctx,
            f"{op} {ctx.alias or '?'}",
            "server",
            ctx.start_ns,
            end,
            parent=ctx.parent_span_id,
            span_id=root_id,
            status="error" if failed else "ok",
            message=ctx.error_type if failed else None,
            attributes=root_attributes(ctx),
            events=events,
        )
    ]
    if ctx.admitted_at:
        rows.append(
            _span(
                ctx,
                "gateway.admission",
                "internal",
                ctx.start_ns,
                ctx.wall_ns(ctx.admitted_at),
                parent=root_id,
                attributes={
                    "pilothouse.reserved_tokens": ctx.reserved_tokens,
                    "pilothouse.reserved_usd": pico_to_str(ctx.reserved_pico),
                },
            )
        )
    if ctx.cache_checked_at:
        rows.append(
            _span(
                ctx,
                "cache.lookup",
                "internal",
                ctx.wall_ns(ctx.admitted_at or ctx.started),
                ctx.wall_ns(ctx.cache_checked_at),
                parent=root_id,
                attributes={"pilothouse.cache_hit": ctx.cache_hit},
            )
        )
    if ctx.guards is not None:  # the enforcement receipt: proof of which guards ran
        from pilothouse.guard import receipt

        start = ctx.wall_ns(ctx.admitted_at or ctx.started)
        rows.append(
            _span(
                ctx,
                "guard.enforcement",
                "internal",
                start,
                end,
                parent=root_id,
                attributes=receipt.span_attributes(ctx.guards),
                events=receipt.span_events(ctx.guards, start),
            )
        )
    if ctx.retrievals:
        from pilothouse.rag import trace as rag_trace

        for rec in ctx.retrievals:
            rows.append(
                _span(
                    ctx,
                    rag_trace.SPAN_NAME,
                    "internal",
                    ctx.wall_ns(rec["started"]),
                    ctx.wall_ns(rec["ended"]),
                    parent=root_id,
                    attributes=rag_trace.span_attributes(rec),
                )
            )
    for n, attempt in enumerate(ctx.attempts, start=1):
        start = ctx.wall_ns(attempt.started) if attempt.started else end
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": op,
            "gen_ai.provider.name": attempt.provider,
            "gen_ai.request.model": attempt.model,
            "pilothouse.attempt": n,
            "pilothouse.outcome": attempt.outcome,
        }
        if attempt.status is not None:
            attrs["http.response.status_code"] = attempt.status
        if attempt.error:
            attrs["error.type"] = attempt.outcome
        ok = attempt.outcome in ("ok",)
        rows.append(
            _span(
                ctx,
                f"{op} {attempt.model}",
                "client",
                start,
                start + int(attempt.latency_s * 1e9),
                parent=root_id,
                status="ok" if ok else ("unset" if attempt.outcome == "skipped_open" else "error"),
                message=attempt.error,
                attributes=attrs,
            )
        )
    return rows


def trace_row(ctx: RequestContext, duration_s: float, content: dict[str, Any] | None) -> Row:
    meta = _metadata(ctx)
    prompt = meta.get("prompt") if isinstance(meta.get("prompt"), dict) else {}
    prompt = prompt or {}
    served = ctx.prompt or {}  # the registry version the gateway rendered, if any
    row: Row = {
        "trace_id": ctx.trace_id,
        "request_id": ctx.request_id,
        "created_at": datetime.fromtimestamp(ctx.start_ns / 1e9, UTC),
        "key_id": ctx.key.id if ctx.key else None,
        "alias": ctx.alias,
        "provider": ctx.provider,
        "upstream_model": ctx.upstream_model,
        "status": ctx.status,
        "error_type": ctx.error_type,
        "prompt_name": _short(served.get("name") or meta.get("prompt_name") or prompt.get("name")),
        "prompt_version": _short(
            served.get("version") or meta.get("prompt_version") or prompt.get("version"), 64
        ),
        "prompt_label": _short(served.get("label"), 64),
        "prompt_hash": _short(served.get("hash"), 64),
        "duration_ms": round(duration_s * 1000, 3),
        "ttft_ms": round(ctx.ttft_s * 1000, 3) if ctx.ttft_s is not None else None,
        "attempts": ctx.attempt_count,
        "input_tokens": ctx.usage.input_tokens,
        "output_tokens": ctx.usage.output_tokens,
        "cost_pico": ctx.cost_pico,
        "cache_hit": ctx.cache_hit,
        "metadata": meta or None,
        "content": content,
        "rollout_id": None,
        "rollout_arm": None,
    }
    if ctx.rollout is not None:
        from pilothouse.gateway.rollout_routing import usage_fields

        row["rollout_id"], row["rollout_arm"] = usage_fields(ctx)
    for key, column in METADATA_COLUMNS.items():
        row[column] = _short(meta.get(key))
    return row


def _short(value: Any, limit: int = 200) -> str | None:
    if value is None:
        return None
    return str(value)[:limit]
