"""Usage and cost aggregates for the console: per day and per model/key/team/... (exact sums)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from pilothouse.costs.report import meta_text, prompt_expr, team_expr
from pilothouse.costs.usage_query import day_bucket, usage_aggregates, usage_counts
from pilothouse.store.tables import api_keys, usage_records

u = usage_records
DIMENSIONS = ("model", "key", "team", "provider", "feature", "user", "prompt")
MAX_FILLED_DAYS = 400
MAX_GROUPS = 200


@dataclass(slots=True)
class Totals:
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_pico: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(slots=True)
class Group:
    key: str | None
    label: str
    totals: Totals


@dataclass(slots=True)
class UsageReport:
    totals: Totals
    days: list[tuple[str, Totals]] = field(default_factory=list)


def dimension_column(by: str) -> ColumnElement[Any]:
    """The grouping expression; a team comes from the request metadata, else the key's."""
    if by == "model":
        return u.c.alias
    if by == "key":
        return u.c.key_id
    if by == "provider":
        return u.c.provider
    if by == "team":
        return team_expr()  # the cost report's rule, so both always agree
    if by == "user":  # the user entity, else the request's metadata `user`
        return func.coalesce(u.c.user_id, meta_text(u.c.metadata, "user"))
    if by == "feature":
        return meta_text(u.c.metadata, by)
    if by == "prompt":
        return prompt_expr()  # NAME@VERSION: cost and tokens per prompt version
    raise ValueError(f"unknown dimension {by!r}")


def _totals(row: Any) -> Totals:
    return Totals(**usage_counts(row))


def _range(since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if since is not None:
        conds.append(u.c.created_at >= since)
    if until is not None:
        conds.append(u.c.created_at < until)
    return conds


def fill_days(
    found: dict[str, Totals], since: datetime | None, until: datetime | None, now: datetime
) -> list[tuple[str, Totals]]:
    """Every day of the range, zeros included, so gaps show as gaps (bounded in length)."""
    if not found and since is None:
        return []
    first = since.astimezone(UTC).date() if since else date.fromisoformat(min(found))
    end = until or now
    last = (end - timedelta(microseconds=1) if until else end).astimezone(UTC).date()
    if found:
        last = max(last, date.fromisoformat(max(found)))
    if (last - first).days >= MAX_FILLED_DAYS:
        return sorted(found.items())
    days = []
    current = first
    while current <= last:
        label = current.isoformat()
        days.append((label, found.get(label, Totals())))
        current += timedelta(days=1)
    return days


async def daily(
    engine: AsyncEngine,
    *,
    since: datetime | None,
    until: datetime | None,
    now: datetime | None = None,
) -> UsageReport:
    """Totals for the range and one row per UTC day (zero days included)."""
    conds = _range(since, until)
    day = day_bucket(engine.dialect.name, u.c.created_at).label("day")
    async with engine.connect() as conn:
        total = _totals((await conn.execute(select(*usage_aggregates()).where(*conds))).one())
        by_day = await conn.execute(
            select(day, *usage_aggregates()).where(*conds).group_by(day).order_by(day)
        )
        found = {str(row.day): _totals(row) for row in by_day}
    return UsageReport(total, fill_days(found, since, until, now or datetime.now(UTC)))


async def breakdown(
    engine: AsyncEngine,
    by: str,
    *,
    since: datetime | None,
    until: datetime | None,
    key_names: dict[str, str] | None = None,
) -> list[Group]:
    """Totals per model, key, team, provider, feature or user; most expensive first."""
    group = dimension_column(by).label("grp")
    query = (
        select(group, *usage_aggregates())
        .select_from(u.outerjoin(api_keys, api_keys.c.id == u.c.key_id))
        .where(*_range(since, until))
        .group_by(group)
        .order_by(func.sum(u.c.cost_pico).desc(), func.count().desc(), group)
        .limit(MAX_GROUPS)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [Group(row.grp, _label(by, row.grp, key_names or {}), _totals(row)) for row in rows]


def _label(by: str, value: Any, key_names: dict[str, str]) -> str:
    if value is None or value == "":
        missing = {"key": "(no key)", "team": "(no team)", "prompt": "(no prompt)"}
        return missing.get(by, "(none)")
    text = str(value)
    if by in ("key", "team", "user") and text in key_names:  # names of keys, teams, users
        return f"{key_names[text]} ({text})"
    return text
