"""Read-only queries behind the request log and the detail pages (SQLAlchemy Core).

The log is built on ``usage_records`` (one row per request, kept as long as the
money is) with the matching trace id looked up per row; traces may be pruned
by retention or absent when a request failed before tracing, the request is
still listed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from pilothouse.costs.report import meta_text
from pilothouse.costs.usage_query import parse_time
from pilothouse.errors import InvalidRequestError
from pilothouse.store.tables import api_keys, feedback, spans, traces, usage_records

u = usage_records
t = traces

PAGE_SIZE = 50
STATUS_CHOICES = (
    ("", "any"),
    ("ok", "succeeded"),
    ("error", "failed"),
    ("4xx", "4xx (client)"),
    ("5xx", "5xx (upstream)"),
)
_STATUS_WORDS = {value for value, _ in STATUS_CHOICES if value}


@dataclass(frozen=True, slots=True)
class LogFilters:
    key_id: str | None = None
    alias: str | None = None
    status: str | None = None
    user: str | None = None
    feature: str | None = None
    session: str | None = None
    provider: str | None = None
    prompt: str | None = None
    cache: str | None = None  # "hit" | "miss"
    since: datetime | None = None
    until: datetime | None = None
    since_text: str = ""
    until_text: str = ""

    def query_items(self) -> list[tuple[str, str]]:
        """The filters as URL parameters (for pagination links)."""
        items = [
            ("key", self.key_id or ""),
            ("model", self.alias or ""),
            ("status", self.status or ""),
            ("user", self.user or ""),
            ("feature", self.feature or ""),
            ("session", self.session or ""),
            ("provider", self.provider or ""),
            ("prompt", self.prompt or ""),
            ("cache", self.cache or ""),
            ("since", self.since_text),
            ("until", self.until_text),
        ]
        return [(k, v) for k, v in items if v]

    @property
    def active(self) -> bool:
        return bool(self.query_items())


@dataclass(slots=True)
class ParsedFilters:
    filters: LogFilters
    errors: list[str] = field(default_factory=list)


def _text(params: Mapping[str, str], name: str, limit: int = 200) -> str | None:
    value = (params.get(name) or "").strip()
    return value[:limit] or None


def _time(params: Mapping[str, str], name: str, errors: list[str]) -> tuple[datetime | None, str]:
    raw = (params.get(name) or "").strip()[:64]
    try:
        value = parse_time(raw, name)
    except InvalidRequestError:
        errors.append(f"“{name}” must be a span like 24h or 7d, or a UTC date/time; got {raw!r}.")
        return None, raw
    return (value.astimezone(UTC) if value else None), raw


def parse_filters(params: Mapping[str, str]) -> ParsedFilters:
    """Filters from the query string; bad values become messages, not 500s."""
    errors: list[str] = []
    status = _text(params, "status", 8)
    if status and status not in _STATUS_WORDS and not (status.isdigit() and len(status) == 3):
        errors.append(f"“status” must be ok, error, 4xx, 5xx or a 3-digit code; got {status!r}.")
        status = None
    cache = _text(params, "cache", 8)
    if cache and cache not in ("hit", "miss"):
        errors.append(f"“cache” must be hit or miss; got {cache!r}.")
        cache = None
    since, since_text = _time(params, "since", errors)
    until, until_text = _time(params, "until", errors)
    filters = LogFilters(
        key_id=_text(params, "key", 32),
        alias=_text(params, "model"),
        status=status,
        user=_text(params, "user"),
        feature=_text(params, "feature"),
        session=_text(params, "session"),
        provider=_text(params, "provider"),
        prompt=_text(params, "prompt"),
        cache=cache,
        since=since,
        until=until,
        since_text=since_text if since else "",
        until_text=until_text if until else "",
    )
    return ParsedFilters(filters, errors)


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
    if f.user:  # the user entity, else the metadata's `user` (as the users page groups)
        conds.append(or_(u.c.user_id == f.user, meta_text(u.c.metadata, "user") == f.user))
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


def log_query(f: LogFilters, cursor: tuple[datetime, str] | None, limit: int) -> Select[Any]:
    """Newest first; ``limit + 1`` rows so the caller knows whether a next page exists."""
    conds = filter_conditions(f)
    if cursor is not None:
        at, row_id = cursor
        conds.append(or_(u.c.created_at < at, and_(u.c.created_at == at, u.c.id < row_id)))
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
            _trace_id_for_row(),
        )
        .where(*conds)
        .order_by(u.c.created_at.desc(), u.c.id.desc())
        .limit(limit + 1)
    )


@dataclass(slots=True)
class LogPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None


async def request_log(
    engine: AsyncEngine,
    f: LogFilters,
    cursor: tuple[datetime, str] | None = None,
    limit: int = PAGE_SIZE,
) -> LogPage:
    async with engine.connect() as conn:
        result = await conn.execute(log_query(f, cursor, limit))
        rows = [dict(r._mapping) for r in result]
    more = len(rows) > limit
    rows = rows[:limit]
    for row in rows:
        meta = row.get("metadata")
        row["metadata"] = meta if isinstance(meta, dict) else {}
    last = rows[-1] if rows and more else None
    next_cursor = encode_cursor(last["created_at"], last["id"]) if last else None
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
