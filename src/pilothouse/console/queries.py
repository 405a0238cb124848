"""Read-only queries behind the request log and the detail pages (SQLAlchemy Core).

The log is built on ``usage_records`` (one row per request, kept as long as the
money is) with the matching trace id looked up per row; traces may be pruned
by retention or absent when a request failed before tracing, the request is
still listed. The filters are parsed in ``console/log_filters.py`` (re-exported
here, where the pages import them from).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from pilothouse.console.guard_filter import guard_condition
from pilothouse.console.log_filters import RANGE_PRESETS as RANGE_PRESETS
from pilothouse.console.log_filters import SORT_NAMES
from pilothouse.console.log_filters import STATUS_CHOICES as STATUS_CHOICES
from pilothouse.console.log_filters import LogFilters as LogFilters
from pilothouse.console.log_filters import ParsedFilters as ParsedFilters
from pilothouse.console.log_filters import parse_filters as parse_filters
from pilothouse.console.search import content_match, tag_match
from pilothouse.costs.report import meta_text
from pilothouse.store.search_index import catch_up
from pilothouse.store.tables import (
    api_keys,
    feedback,
    spans,
    teams,
    traces,
    usage_records,
    users,
)

u = usage_records
t = traces

PAGE_SIZE = 50
SORTS = dict(zip(SORT_NAMES, (u.c.created_at, u.c.latency_ms, u.c.cost_pico), strict=True))


def status_condition(status: str) -> ColumnElement[bool]:
    if status == "ok":
        return u.c.status < 400
    if status == "error":
        return u.c.status >= 400
    if status == "4xx":
        return and_(u.c.status >= 400, u.c.status < 500)
    if status == "5xx":
        return u.c.status >= 500
    return u.c.status == int(status)


def filter_conditions(f: LogFilters) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if f.key_id:
        conds.append(u.c.key_id == f.key_id)
    if f.alias:
        conds.append(u.c.alias == f.alias)
    if f.status:
        conds.append(status_condition(f.status))
    if f.user:  # the request's metadata user, or the user entity (by id or name)
        named = select(users.c.id).where(users.c.name == f.user)
        conds.append(
            or_(
                meta_text(u.c.metadata, "user") == f.user,
                u.c.user_id == f.user,
                u.c.user_id.in_(named),
            )
        )
    if f.team:  # the cost report's team rule (costs/report.py team_expr), by id or name
        key_team = (
            select(meta_text(api_keys.c.metadata, "team"))
            .where(api_keys.c.id == u.c.key_id)
            .scalar_subquery()
        )
        team = func.coalesce(u.c.team_id, meta_text(u.c.metadata, "team"), key_team)
        named = select(teams.c.id).where(teams.c.name == f.team)
        conds.append(or_(team == f.team, team.in_(named)))
    if f.tag:
        conds.append(tag_match(u.c.metadata, f.tag))
    if f.q:
        conds.append(content_match(u.c.request_id, f.q))
    if f.latency_min is not None:
        conds.append(u.c.latency_ms >= f.latency_min)
    if f.latency_max is not None:
        conds.append(u.c.latency_ms <= f.latency_max)
    if f.cost_min_pico is not None:
        conds.append(u.c.cost_pico >= f.cost_min_pico)
    if f.cost_max_pico is not None:
        conds.append(u.c.cost_pico <= f.cost_max_pico)
    if f.feature:
        conds.append(meta_text(u.c.metadata, "feature") == f.feature)
    if f.session:
        conds.append(meta_text(u.c.metadata, "session") == f.session)
    if f.provider:
        conds.append(u.c.provider == f.provider)
    if f.prompt:  # "name" or "name@version"
        name, _, version = f.prompt.partition("@")
        conds.append(u.c.prompt_name == name)
        if version.isdigit():
            conds.append(u.c.prompt_version == int(version))
    if f.cache:
        conds.append(u.c.cache_hit.is_(f.cache == "hit"))
    if f.guard or f.verdict or f.entity:
        conds.append(guard_condition(f.guard, f.verdict, f.entity))
    if f.since:
        conds.append(u.c.created_at >= f.since)
    if f.until:
        conds.append(u.c.created_at < f.until)
    return conds


# -- cursors: an opaque, URL-safe position (created_at, row id) ----------------------------


def encode_cursor(created_at: datetime, row_id: str) -> str:
    moment = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
    raw = f"{moment.astimezone(UTC).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Inverse of :func:`encode_cursor`; ``ValueError`` for anything it did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, row_id = raw.split("|", 1)
        moment = datetime.fromisoformat(stamp)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("malformed cursor") from None
    if moment.tzinfo is None or not row_id or len(row_id) > 64:
        raise ValueError("malformed cursor")
    return moment.astimezone(UTC), row_id


def _trace_id_for_row() -> Any:
    return (
        select(t.c.trace_id)
        .where(t.c.request_id == u.c.request_id)
        .limit(1)
        .scalar_subquery()
        .label("trace_id")
    )


def encode_position(f: LogFilters, row: Mapping[str, Any]) -> str:
    """The cursor after ``row`` in ``f``'s order (time cursors keep their original format)."""
    if f.sort == "time" and f.order == "desc":
        return encode_cursor(row["created_at"], row["id"])
    value = row["created_at"] if f.sort == "time" else row[SORTS[f.sort].name]
    if isinstance(value, datetime):
        value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    raw = f"{f.sort}.{f.order}|{value}|{row['id']}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_position(f: LogFilters, cursor: str) -> tuple[Any, str]:
    """Inverse of :func:`encode_position` for the same order; ``ValueError`` otherwise."""
    if f.sort == "time" and f.order == "desc":
        return decode_cursor(cursor)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        order, value, row_id = raw.split("|", 2)
        if order != f"{f.sort}.{f.order}" or not row_id or len(row_id) > 64:
            raise ValueError("cursor of another order")
        if f.sort == "time":
            return datetime.fromisoformat(value).astimezone(UTC), row_id
        return (float(value) if f.sort == "latency" else int(value)), row_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("malformed cursor") from None


def log_query(f: LogFilters, cursor: tuple[Any, str] | None, limit: int) -> Select[Any]:
    """In ``f``'s order (newest first by default), ties broken by row id; ``limit + 1`` rows
    so the caller knows whether a next page exists."""
    conds = filter_conditions(f)
    column = SORTS[f.sort]
    if cursor is not None:
        at, row_id = cursor
        if f.order == "desc":
            conds.append(or_(column < at, and_(column == at, u.c.id < row_id)))
        else:
            conds.append(or_(column > at, and_(column == at, u.c.id > row_id)))
    order = (column.desc(), u.c.id.desc()) if f.order == "desc" else (column.asc(), u.c.id.asc())
    return (
        select(
            u.c.id,
            u.c.request_id,
            u.c.created_at,
            u.c.key_id,
            u.c.alias,
            u.c.provider,
            u.c.upstream_model,
            u.c.status,
            u.c.error_type,
            u.c.stream,
            u.c.attempts,
            u.c.input_tokens,
            u.c.output_tokens,
            u.c.cost_pico,
            u.c.latency_ms,
            u.c.ttft_ms,
            u.c.cache_hit,
            u.c.metadata,
            u.c.team_id,
            _trace_id_for_row(),
        )
        .where(*conds)
        .order_by(*order)
        .limit(limit + 1)
    )


@dataclass(slots=True)
class LogPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None


async def request_log(
    engine: AsyncEngine,
    f: LogFilters,
    cursor: tuple[Any, str] | None = None,
    limit: int = PAGE_SIZE,
) -> LogPage:
    if f.q:
        await catch_up(engine)
    async with engine.connect() as conn:
        result = await conn.execute(log_query(f, cursor, limit))
        rows = [dict(r._mapping) for r in result]
    more = len(rows) > limit
    rows = rows[:limit]
    for row in rows:
        meta = row.get("metadata")
        row["metadata"] = meta if isinstance(meta, dict) else {}
    last = rows[-1] if rows and more else None
    next_cursor = encode_position(f, last) if last else None
    return LogPage(rows, next_cursor)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    name: str
    team: str | None
    revoked: bool


async def list_keys(engine: AsyncEngine) -> list[KeyInfo]:
    query = select(api_keys.c.id, api_keys.c.name, api_keys.c.metadata, api_keys.c.revoked_at)
    async with engine.connect() as conn:
        rows = (await conn.execute(query.order_by(api_keys.c.name, api_keys.c.id))).all()
    out = []
    for row in rows:
        meta = row.metadata if isinstance(row.metadata, dict) else {}
        team = meta.get("team")
        out.append(
            KeyInfo(row.id, row.name, str(team) if team else None, row.revoked_at is not None)
        )
    return out


# -- one request ---------------------------------------------------------------------------


@dataclass(slots=True)
class RequestRecord:
    usage: dict[str, Any] | None
    trace: dict[str, Any] | None
    spans: list[dict[str, Any]]
    feedback: list[dict[str, Any]] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.usage is not None or self.trace is not None or bool(self.spans)


async def _first(conn: Any, query: Select[Any]) -> dict[str, Any] | None:
    row = (await conn.execute(query.limit(1))).first()
    return dict(row._mapping) if row is not None else None


async def _spans(conn: Any, trace_id: str) -> list[dict[str, Any]]:
    query = select(spans).where(spans.c.trace_id == trace_id).order_by(spans.c.start_ns)
    return [dict(r._mapping) for r in await conn.execute(query)]


async def _feedback(conn: Any, request_id: str | None) -> list[dict[str, Any]]:
    if not request_id:
        return []
    query = (
        select(feedback).where(feedback.c.request_id == request_id).order_by(feedback.c.created_at)
    )
    return [dict(r._mapping) for r in await conn.execute(query)]


async def load_request(engine: AsyncEngine, request_id: str) -> RequestRecord:
    async with engine.connect() as conn:
        usage = await _first(conn, select(u).where(u.c.request_id == request_id))
        trace = await _first(
            conn, select(t).where(t.c.request_id == request_id).order_by(t.c.created_at)
        )
        found = await _spans(conn, trace["trace_id"]) if trace else []
        notes = await _feedback(conn, request_id)
    return RequestRecord(usage, trace, found, notes)


async def load_trace(engine: AsyncEngine, trace_id: str) -> RequestRecord:
    async with engine.connect() as conn:
        trace = await _first(conn, select(t).where(t.c.trace_id == trace_id))
        usage = None
        if trace and trace.get("request_id"):
            usage = await _first(conn, select(u).where(u.c.request_id == trace["request_id"]))
        found = await _spans(conn, trace_id)
        notes = await _feedback(conn, trace["request_id"] if trace else None)
    return RequestRecord(usage, trace, found, notes)
