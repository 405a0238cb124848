"""Read-only queries behind the request log and the detail pages (SQLAlchemy Core).

The log is built on ``usage_records`` (one row per request, kept as long as the
money is) with the matching trace id looked up per row; traces may be pruned
by retention or absent when a request failed before tracing, the request is
still listed.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from pilothouse.console.guard_filter import VERDICTS, guard_condition
from pilothouse.console.search import MAX_QUERY_CHARS, content_match, tag_match, words
from pilothouse.costs.report import meta_text
from pilothouse.costs.usage_query import parse_time
from pilothouse.errors import InvalidRequestError
from pilothouse.limits.money import PICO_PER_USD
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
STATUS_CHOICES = (
    ("", "any"),
    ("ok", "succeeded"),
    ("error", "failed"),
    ("4xx", "4xx (client)"),
    ("5xx", "5xx (upstream)"),
)
_STATUS_WORDS = {value for value, _ in STATUS_CHOICES if value}
RANGE_PRESETS = (("1h", "last hour"), ("24h", "last 24 hours"), ("7d", "last 7 days"),
                 ("30d", "last 30 days"))  # fmt: skip
_PRESETS = {value for value, _ in RANGE_PRESETS}
_SPAN = re.compile(r"\d+\s*[a-zA-Z]+")
SORTS = {"time": u.c.created_at, "latency": u.c.latency_ms, "cost": u.c.cost_pico}


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
    guard: str | None = None  # the guards page's drill-down (console/guard_filter.py)
    verdict: str | None = None
    entity: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    since_text: str = ""
    until_text: str = ""
    q: str | None = None  # full-text search over stored content (console/search.py)
    tag: str | None = None
    team: str | None = None
    latency_min: float | None = None
    latency_max: float | None = None
    cost_min: str | None = None  # exact USD strings, as typed
    cost_max: str | None = None
    range: str = ""  # a preset ("24h"), "custom", or "" (any time)
    sort: str = "time"
    order: str = "desc"

    def query_items(self, *, sorted_: bool = True) -> list[tuple[str, str]]:
        """The filters as URL parameters (for pagination, preset and sort links)."""
        custom = self.range not in _PRESETS
        items = [
            ("q", self.q or ""),
            ("key", self.key_id or ""),
            ("model", self.alias or ""),
            ("status", self.status or ""),
            ("user", self.user or ""),
            ("feature", self.feature or ""),
            ("session", self.session or ""),
            ("provider", self.provider or ""),
            ("prompt", self.prompt or ""),
            ("cache", self.cache or ""),
            ("tag", self.tag or ""),
            ("team", self.team or ""),
            ("latency_min", _num(self.latency_min)),
            ("latency_max", _num(self.latency_max)),
            ("cost_min", self.cost_min or ""),
            ("cost_max", self.cost_max or ""),
            ("guard", self.guard or ""),
            ("verdict", self.verdict or ""),
            ("entity", self.entity or ""),
            ("range", self.range),
            ("since", self.since_text if custom else ""),
            ("until", self.until_text if custom else ""),
        ]
        if sorted_ and (self.sort, self.order) != ("time", "desc"):
            items += [("sort", self.sort), ("order", self.order)]
        return [(k, v) for k, v in items if v]

    def without(self, *names: str) -> list[tuple[str, str]]:
        """The URL parameters minus some (a preset link replaces the time range)."""
        return [(k, v) for k, v in self.query_items() if k not in names]

    def sorted_by(self, sort: str) -> list[tuple[str, str]]:
        """Parameters sorting by ``sort``: descending first, a second click flips the order."""
        order = "asc" if (self.sort, self.order) == (sort, "desc") else "desc"
        return [*self.query_items(sorted_=False), ("sort", sort), ("order", order)]

    @property
    def active(self) -> bool:
        return bool(self.query_items(sorted_=False))

    @property
    def cost_min_pico(self) -> int | None:
        return _pico(self.cost_min)

    @property
    def cost_max_pico(self) -> int | None:
        return _pico(self.cost_max)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _pico(usd: str | None) -> int | None:
    return None if usd is None else int(Decimal(usd) * PICO_PER_USD)


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


def _number(params: Mapping[str, str], name: str, errors: list[str]) -> float | None:
    raw = (params.get(name) or "").strip()[:32]
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1e12:
        errors.append(f"“{name}” must be a number of milliseconds, 0 or more; got {raw!r}.")
        return None
    return value


def _usd(params: Mapping[str, str], name: str, errors: list[str]) -> str | None:
    raw = (params.get(name) or "").strip().removeprefix("$")[:32]
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or not 0 <= value < 10**9 or value != round(value, 12):
        errors.append(f"“{name}” must be US dollars, 0 or more (e.g. 0.002); got {raw!r}.")
        return None
    return raw


def _hour(moment: datetime | None, raw: str) -> datetime | None:
    """Custom ranges have hourly granularity: a picked date/time is floored to its hour
    (a span such as ``90m`` ago is a moment relative to now and stays exact)."""
    if moment is None or _SPAN.fullmatch(raw.strip()):
        return moment
    return moment.replace(minute=0, second=0, microsecond=0)


def _time_range(
    params: Mapping[str, str], errors: list[str]
) -> tuple[str, datetime | None, datetime | None, str, str]:
    """``range`` (a preset or ``custom``) with ``since``/``until``; old ``since=24h`` links work."""
    chosen = (params.get("range") or "").strip()[:8]
    if chosen and chosen not in _PRESETS and chosen != "custom":
        errors.append(f"“range” must be one of 1h, 24h, 7d, 30d or custom; got {chosen!r}.")
        chosen = ""
    since_raw = (params.get("since") or "").strip()
    if not chosen and since_raw in _PRESETS and not params.get("until"):
        chosen = since_raw
    if chosen in _PRESETS:
        since = parse_time(chosen, "since")
        return chosen, since.astimezone(UTC) if since else None, None, chosen, ""
    since, since_text = _time(params, "since", errors)
    until, until_text = _time(params, "until", errors)
    if chosen == "custom":
        since, until = _hour(since, since_text), _hour(until, until_text)
        if since and until and since >= until:
            errors.append("The custom range's start must come before its end.")
    if not chosen and (since or until):
        chosen = "custom"
    return (
        chosen, since, until, since_text if since else "", until_text if until else ""
    )  # fmt: skip


def parse_filters(params: Mapping[str, str], *, may_search: bool = True) -> ParsedFilters:
    """Filters from the query string; bad values become messages, not 500s.

    ``may_search`` is false for the viewer role: a content search is refused, since
    which requests match a word would reveal content the role may not read.
    """
    errors: list[str] = []
    status = _text(params, "status", 8)
    if status and status not in _STATUS_WORDS and not (status.isdigit() and len(status) == 3):
        errors.append(f"“status” must be ok, error, 4xx, 5xx or a 3-digit code; got {status!r}.")
        status = None
    cache = _text(params, "cache", 8)
    if cache and cache not in ("hit", "miss"):
        errors.append(f"“cache” must be hit or miss; got {cache!r}.")
        cache = None
    chosen, since, until, since_text, until_text = _time_range(params, errors)
    q = _text(params, "q", MAX_QUERY_CHARS)
    if q and not may_search:
        errors.append("Your role may not search message content; the other filters apply.")
        q = None
    elif q and not words(q):
        errors.append(f"“q” must contain at least one word to search for; got {q!r}.")
        q = None
    sort = _text(params, "sort", 16) or "time"
    if sort not in SORTS:
        errors.append(f"“sort” must be time, latency or cost; got {sort!r}.")
        sort = "time"
    order = _text(params, "order", 8) or "desc"
    if order not in ("asc", "desc"):
        errors.append(f"“order” must be asc or desc; got {order!r}.")
        order = "desc"
    lat_min = _number(params, "latency_min", errors)
    lat_max = _number(params, "latency_max", errors)
    cost_min, cost_max = _usd(params, "cost_min", errors), _usd(params, "cost_max", errors)
    verdict = _text(params, "verdict", 16)
    if verdict and verdict not in VERDICTS:
        errors.append(f"“verdict” must be one of {', '.join(VERDICTS)}; got {verdict!r}.")
        verdict = None
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
        guard=_text(params, "guard"),
        verdict=verdict,
        entity=_text(params, "entity", 64),
        since=since,
        until=until,
        since_text=since_text,
        until_text=until_text,
        q=q,
        tag=_text(params, "tag"),
        team=_text(params, "team"),
        latency_min=lat_min,
        latency_max=lat_max,
        cost_min=cost_min,
        cost_max=cost_max,
        range=chosen,
        sort=sort,
        order=order,
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
