"""Read traces back: filtered, cursor-paginated lists and full reconstructions."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.errors import InvalidRequestError, NotFoundError
from pilothouse.evals.tables import eval_online_scores
from pilothouse.inputs import query_int
from pilothouse.limits.money import pico_to_str
from pilothouse.store.tables import feedback, spans, traces, usage_records

MAX_LIMIT = 200
_FILTERS = {
    "key_id": traces.c.key_id,
    "model": traces.c.alias,
    "user": traces.c.user_id,
    "feature": traces.c.feature,
    "team": traces.c.team,
    "task_id": traces.c.task_id,
    "provider": traces.c.provider,
}


def encode_cursor(created_at: datetime, trace_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{trace_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, trace_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(stamp), trace_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequestError(
            "`cursor` is not a cursor this API returned", param="cursor"
        ) from None


def summary(row: Any) -> dict[str, Any]:
    created = row.created_at
    return {
        "trace_id": row.trace_id,
        "request_id": row.request_id,
        "created_at": created.isoformat() if created else None,
        "key_id": row.key_id,
        "model": row.alias,
        "provider": row.provider,
        "upstream_model": row.upstream_model,
        "status": row.status,
        "error_type": row.error_type,
        "user": row.user_id,
        "feature": row.feature,
        "team": row.team,
        "task_id": row.task_id,
        "prompt_name": row.prompt_name,
        "prompt_version": row.prompt_version,
        "prompt_label": row.prompt_label,
        "prompt_hash": row.prompt_hash,
        "duration_ms": row.duration_ms,
        "ttft_ms": row.ttft_ms,
        "attempts": row.attempts,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cost_usd": pico_to_str(row.cost_pico or 0),
        "cache_hit": row.cache_hit,
    }


def _status_filter(value: str) -> Any:
    if value == "error":
        return traces.c.status >= 400
    if value == "ok":
        return traces.c.status < 400
    if value.isascii() and value.isdigit():
        return traces.c.status == query_int(value, "status", 100, 599)
    raise InvalidRequestError("`status` must be ok, error or an HTTP status", param="status")


async def list_traces(
    engine: AsyncEngine,
    *,
    filters: dict[str, str | None],
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequestError(f"`limit` must be between 1 and {MAX_LIMIT}", param="limit")
    unknown = set(filters) - set(_FILTERS)
    if unknown:
        raise InvalidRequestError(f"unknown filter(s): {', '.join(sorted(unknown))}")
    where = [_FILTERS[name] == value for name, value in filters.items() if value]
    if status:
        where.append(_status_filter(status))
    if since:
        where.append(traces.c.created_at >= since)
    if until:
        where.append(traces.c.created_at < until)
    if cursor:
        at, trace_id = decode_cursor(cursor)
        where.append(
            or_(
                traces.c.created_at < at,
                and_(traces.c.created_at == at, traces.c.trace_id < trace_id),
            )
        )
    query = (
        select(traces)
        .where(*where)
        .order_by(traces.c.created_at.desc(), traces.c.trace_id.desc())
        .limit(limit + 1)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).fetchall()
    page = rows[:limit]
    next_cursor = (
        encode_cursor(page[-1].created_at, page[-1].trace_id) if len(rows) > limit else None
    )
    return {"data": [summary(r) for r in page], "next_cursor": next_cursor}


def _span(row: Any) -> dict[str, Any]:
    return {
        "span_id": row.span_id,
        "parent_span_id": row.parent_span_id,
        "name": row.name,
        "kind": row.kind,
        "source": row.source,
        "start_ns": row.start_ns,
        "end_ns": row.end_ns,
        "duration_ms": round((row.end_ns - row.start_ns) / 1e6, 3),
        "status": row.status,
        "status_message": row.status_message,
        "attributes": row.attributes or {},
        "events": row.events or [],
    }


async def get_trace(engine: AsyncEngine, ident: str) -> dict[str, Any]:
    """The reconstruction of one request, by request id or trace id."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(traces).where(or_(traces.c.request_id == ident, traces.c.trace_id == ident))
            )
        ).first()
        trace_id = row.trace_id if row is not None else ident
        span_rows = (
            await conn.execute(
                select(spans)
                .where(spans.c.trace_id == trace_id)
                # Spans starting in the same nanosecond: the root (no parent) first.
                .order_by(spans.c.start_ns, spans.c.parent_span_id.is_not(None))
            )
        ).fetchall()
        if row is None and not span_rows:
            raise NotFoundError(f"no trace for {ident!r}")
        usage = None
        notes: list[dict[str, Any]] = []
        online: list[dict[str, Any]] = []
        if row is not None and row.request_id:
            usage_row = (
                await conn.execute(
                    select(usage_records).where(usage_records.c.request_id == row.request_id)
                )
            ).first()
            if usage_row is not None:
                usage = {str(k): v for k, v in usage_row._asdict().items() if k != "cost_pico"}
                usage["created_at"] = usage_row.created_at.isoformat()
                usage["cost_usd"] = pico_to_str(usage_row.cost_pico)
            online = [
                {
                    "scorer": e.scorer,
                    "value": e.value,
                    "passed": e.passed,
                    "label": e.label,
                    "explanation": e.explanation,
                    "error": e.error,
                }
                for e in await conn.execute(
                    select(eval_online_scores).where(
                        eval_online_scores.c.request_id == row.request_id
                    )
                )
            ]
            notes = [
                {
                    "success": f.success,
                    "score": f.score,
                    "comment": f.comment,
                    "created_at": f.created_at.isoformat(),
                }
                for f in await conn.execute(
                    select(feedback).where(feedback.c.request_id == row.request_id)
                )
            ]
    out: dict[str, Any] = summary(row) if row is not None else {"trace_id": trace_id}
    content = row.content if row is not None else None
    out.update(
        {
            "metadata": row.metadata if row is not None else None,
            "request": (content or {}).get("request"),
            "response": (content or {}).get("response"),
            "spans": [_span(s) for s in span_rows],
            "attempts": [
                {
                    "provider": s.attributes.get("gen_ai.provider.name"),
                    "model": s.attributes.get("gen_ai.request.model"),
                    "outcome": s.attributes.get("pilothouse.outcome"),
                    "duration_ms": round((s.end_ns - s.start_ns) / 1e6, 3),
                    "error": s.status_message,
                }
                for s in span_rows
                if s.source == "gateway" and s.kind == "client"
            ],
            "usage": usage,
            "feedback": notes,
            "evaluations": online,
        }
    )
    return out


async def prune(engine: AsyncEngine, before: datetime) -> int:
    """Delete traces (and their spans) created before ``before``; returns traces removed."""
    async with engine.begin() as conn:
        old = select(traces.c.trace_id).where(traces.c.created_at < before)
        ids = [r.trace_id for r in await conn.execute(old)]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            await conn.execute(delete(spans).where(spans.c.trace_id.in_(chunk)))
            await conn.execute(delete(traces).where(traces.c.trace_id.in_(chunk)))
        cutoff_ns = int(before.timestamp() * 1e9)
        await conn.execute(delete(spans).where(spans.c.end_ns < cutoff_ns))
    return len(ids)
