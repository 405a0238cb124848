"""Usage aggregation for the admin API and the CLI: exact sums, grouped and filtered."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from pilothouse.errors import InvalidRequestError
from pilothouse.limits.money import pico_to_str
from pilothouse.store.tables import api_keys as k
from pilothouse.store.tables import usage_records as u

GROUPS = ("key", "team", "user", "model", "provider", "day", "upstream_model")
_RELATIVE = re.compile(r"^([0-9]{1,15})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(value: str | None, param: str) -> datetime | None:
    """ISO date/datetime (UTC assumed) or a relative span such as ``7d`` or ``12h``.

    Always an aware UTC datetime a database can store; anything else is a 400.
    """
    if not value:
        return None
    match = _RELATIVE.match(value.strip())
    try:
        if match:
            span = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
            return datetime.now(UTC) - span
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        raise InvalidRequestError(
            f"`{param}` is out of range: it must fall between the years 1 and 9999", param=param
        ) from None
    except ValueError:
        raise InvalidRequestError(
            f"`{param}` must be an ISO date/time or a span like 7d, got {value[:64]!r}",
            param=param,
        ) from None


def day_bucket(dialect: str, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp as ``YYYY-MM-DD`` on either database."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)


def usage_aggregates() -> list[ColumnElement[Any]]:
    """Request count, errors, tokens and exact cost over ledger rows (shared by all reports)."""
    return [
        func.count().label("requests"),
        func.sum(case((u.c.status >= 400, 1), else_=0)).label("errors"),
        func.sum(u.c.input_tokens).label("input_tokens"),
        func.sum(u.c.output_tokens).label("output_tokens"),
        func.sum(u.c.cached_input_tokens).label("cached_input_tokens"),
        func.sum(u.c.cost_pico).label("cost_pico"),
    ]


def usage_counts(row: Any) -> dict[str, int]:
    """The integers of :func:`usage_aggregates` from a result row (NULL sums are 0)."""
    return {
        "requests": int(row.requests or 0),
        "errors": int(row.errors or 0),
        "input_tokens": int(row.input_tokens or 0),
        "output_tokens": int(row.output_tokens or 0),
        "cached_input_tokens": int(row.cached_input_tokens or 0),
        "cost_pico": int(row.cost_pico or 0),
    }


def meta_text(table_column: Any, field: str) -> ColumnElement[Any]:
    """A metadata JSON field as text (``NULL`` when absent), on SQLite and PostgreSQL."""
    return table_column[field].as_string()  # type: ignore[no-any-return]


def team_expr() -> ColumnElement[Any]:
    """The team a request is charged to: its team entity, its own metadata, then its key's.

    Needs ``api_keys`` joined (outer) on the key id; every report that groups by
    team uses this one rule, so `usage --group-by team` and `report costs --by
    team` agree.
    """
    return func.coalesce(
        u.c.team_id, meta_text(u.c["metadata"], "team"), meta_text(k.c["metadata"], "team")
    )


def user_expr() -> ColumnElement[Any]:
    """The user a request is charged to: its user entity, else its metadata ``user``."""
    return func.coalesce(u.c.user_id, meta_text(u.c["metadata"], "user"))


def _group_column(engine: AsyncEngine, group_by: str) -> ColumnElement[Any]:
    return {
        "key": u.c.key_id,
        "team": team_expr(),
        "user": user_expr(),
        "model": u.c.alias,
        "provider": u.c.provider,
        "upstream_model": u.c.upstream_model,
        "day": day_bucket(engine.dialect.name, u.c.created_at),
    }[group_by]


def _totals(row: Any) -> dict[str, Any]:
    counts: dict[str, Any] = usage_counts(row)
    counts["cost_usd"] = pico_to_str(counts.pop("cost_pico"))
    return counts


async def usage_summary(
    engine: AsyncEngine,
    *,
    key_id: str | None = None,
    team_id: str | None = None,
    user_id: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    group_by: str | None = None,
) -> dict[str, Any]:
    if group_by is not None and group_by not in GROUPS:
        raise InvalidRequestError(f"`group_by` must be one of {GROUPS}", param="group_by")
    aggregates = usage_aggregates()
    filters = []
    if key_id:
        filters.append(u.c.key_id == key_id)
    if team_id:  # the same attribution as grouping: entity, then metadata
        filters.append(team_expr() == team_id)
    if user_id:
        filters.append(user_expr() == user_id)
    if model:
        filters.append(u.c.alias == model)
    if since:
        filters.append(u.c.created_at >= since)
    if until:
        filters.append(u.c.created_at < until)
    data: list[dict[str, Any]] = []
    joined = u.outerjoin(k, k.c.id == u.c.key_id)  # team_expr reads the key's metadata
    async with engine.connect() as conn:
        total_row = (
            await conn.execute(select(*aggregates).select_from(joined).where(*filters))
        ).one()
        if group_by is not None:
            column = _group_column(engine, group_by).label("group")
            query = (
                select(column, *aggregates)
                .select_from(joined)
                .where(*filters)
                .group_by(column)
                .order_by(column)
            )
            for row in await conn.execute(query):
                data.append({group_by: row.group, **_totals(row)})
    return {"data": data, "total": _totals(total_row)}
