"""The dashboards' aggregates: latency and TTFT percentiles per alias over time, error and
cache-hit rates, what the cache saved, and budget used per key and team.

Percentiles are nearest-rank, computed in the database with window functions (the
same SQL on SQLite and PostgreSQL, so both stores give the same numbers) over
successful requests only: a fast 429 is not a fast answer. A handful of grouped
queries per page, whatever the number of aliases, keys or teams.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from pilothouse.costs.budget_alerts import period_end
from pilothouse.limits.budget import period_key, period_start
from pilothouse.store.tables import usage_records as u

PERCENTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
HOURLY_UP_TO = timedelta(hours=72)  # longer ranges are bucketed per UTC day
MAX_ALIASES = 6  # charted; the table lists every alias


def bucket(dialect: str, column: Any, hourly: bool) -> ColumnElement[Any]:
    """A timestamp's UTC hour (``YYYY-MM-DDTHH:00``) or day (``YYYY-MM-DD``)."""
    if dialect == "postgresql":
        pattern = 'YYYY-MM-DD"T"HH24:00' if hourly else "YYYY-MM-DD"
        return func.to_char(func.timezone("UTC", column), pattern)
    return func.strftime("%Y-%m-%dT%H:00" if hourly else "%Y-%m-%d", column)


def bucket_labels(since: datetime, until: datetime, hourly: bool) -> list[str]:
    """Every bucket of the range in order, so a quiet hour shows as a gap, not a jump."""
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    at = since.replace(minute=0, second=0, microsecond=0)
    if not hourly:
        at = at.replace(hour=0)
    out: list[str] = []
    while at < until and len(out) < 24 * 400:
        out.append(at.strftime("%Y-%m-%dT%H:00" if hourly else "%Y-%m-%d"))
        at += step
    return out


@dataclass(slots=True)
class Rates:
    requests: int = 0
    errors: int = 0
    cache_hits: int = 0
    tokens_saved: int = 0
    saved_pico: int = 0
    cost_pico: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def hit_rate(self) -> float:
        return self.cache_hits / self.requests if self.requests else 0.0


@dataclass(slots=True)
class AliasStats:
    alias: str
    rates: Rates
    latency: dict[str, float | None] = field(default_factory=dict)
    ttft: dict[str, float | None] = field(default_factory=dict)


@dataclass(slots=True)
class Dashboard:
    buckets: list[str]
    hourly: bool
    totals: Rates
    per_bucket: dict[str, Rates]
    aliases: list[AliasStats]
    # alias -> bucket -> {"p50": ms, ...}; the same for TTFT (streamed requests only).
    latency_series: dict[str, dict[str, dict[str, float | None]]]
    ttft_series: dict[str, dict[str, dict[str, float | None]]]


def _range_conds(since: datetime, until: datetime) -> list[ColumnElement[bool]]:
    return [u.c.created_at >= since, u.c.created_at < until]


def _rates_columns() -> list[Any]:
    return [
        func.count().label("requests"),
        func.sum(case((u.c.status >= 400, 1), else_=0)).label("errors"),
        func.sum(case((u.c.cache_hit.is_(True), 1), else_=0)).label("hits"),
        func.coalesce(func.sum(u.c.cache_tokens_saved), 0).label("tokens_saved"),
        func.coalesce(func.sum(u.c.cache_saved_pico), 0).label("saved_pico"),
        func.coalesce(func.sum(u.c.cost_pico), 0).label("cost_pico"),
    ]


def _rates(row: Any) -> Rates:
    return Rates(
        int(row.requests), int(row.errors or 0), int(row.hits or 0), int(row.tokens_saved),
        int(row.saved_pico), int(row.cost_pico),
    )  # fmt: skip


def percentile_query(
    value: Any, groups: Sequence[ColumnElement[Any]], conds: Sequence[ColumnElement[bool]]
) -> Any:
    """Nearest-rank p50/p95/p99 of ``value`` per group: the smallest value whose rank in its
    group is at least p * n."""
    names = [f"g{i}" for i in range(len(groups))]
    ranked = (
        select(
            *(g.label(n) for g, n in zip(groups, names, strict=True)),
            value.label("v"),
            func.row_number().over(partition_by=list(groups), order_by=value).label("rn"),
            func.count().over(partition_by=list(groups)).label("n"),
        )
        .where(*conds, value.is_not(None))
        .subquery()
    )
    keys = [ranked.c[n] for n in names]
    picks = [
        func.min(case((ranked.c.rn >= ranked.c.n * p, ranked.c.v))).label(name)
        for name, p in PERCENTILES
    ]
    return select(*keys, *picks).group_by(*keys)


async def dashboard(engine: AsyncEngine, since: datetime, until: datetime) -> Dashboard:
    hourly = until - since <= HOURLY_UP_TO
    b = bucket(engine.dialect.name, u.c.created_at, hourly)
    conds = _range_conds(since, until)
    ok = [*conds, u.c.status < 400]
    alias = func.coalesce(u.c.alias, "(none)")
    async with engine.connect() as conn:
        per_bucket = {
            row.bucket: _rates(row)
            for row in await conn.execute(
                select(b.label("bucket"), *_rates_columns()).where(*conds).group_by(b)
            )
        }
        per_alias = {
            row.alias: AliasStats(row.alias, _rates(row))
            for row in await conn.execute(
                select(alias.label("alias"), *_rates_columns()).where(*conds).group_by(alias)
            )
        }
        series: dict[str, dict[str, dict[str, dict[str, float | None]]]] = {}
        for name, column in (("latency", u.c.latency_ms), ("ttft", u.c.ttft_ms)):
            overall = await conn.execute(percentile_query(column, [alias], ok))
            for row in overall:
                stats = per_alias.get(row.g0)
                if stats is not None:
                    getattr(stats, name).update({p: row._mapping[p] for p, _ in PERCENTILES})
            over_time: dict[str, dict[str, dict[str, float | None]]] = {}
            for row in await conn.execute(percentile_query(column, [alias, b], ok)):
                over_time.setdefault(row.g0, {})[row.g1] = {
                    p: row._mapping[p] for p, _ in PERCENTILES
                }
            series[name] = over_time
    totals = Rates()
    for r in per_bucket.values():
        totals.requests += r.requests
        totals.errors += r.errors
        totals.cache_hits += r.cache_hits
        totals.tokens_saved += r.tokens_saved
        totals.saved_pico += r.saved_pico
        totals.cost_pico += r.cost_pico
    aliases = sorted(per_alias.values(), key=lambda a: (-a.rates.requests, a.alias))
    return Dashboard(
        bucket_labels(since, until, hourly), hourly, totals, per_bucket, aliases,
        series["latency"], series["ttft"],
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class BudgetUse:
    kind: str  # "key" | "team"
    id: str
    name: str
    period: str  # total | day | month
    budget_pico: int
    spent_pico: int

    @property
    def share(self) -> float:
        return self.spent_pico / self.budget_pico if self.budget_pico else 1.0

    @property
    def left_pico(self) -> int:
        return max(0, self.budget_pico - self.spent_pico)


async def budget_use(
    engine: AsyncEngine,
    kind: str,
    scopes: Sequence[tuple[str, str, int, str]],  # (id, name, budget_pico, budget_period)
    now: datetime | None = None,
) -> list[BudgetUse]:
    """Ledger spend of each budgeted key or team in its current period: one grouped query per
    distinct period (total, today, this month), not one per key."""
    column = u.c.key_id if kind == "key" else u.c.team_id
    now = (now or datetime.now(UTC)).astimezone(UTC)
    by_period: dict[str, list[str]] = {}
    for scope_id, _, _, period in scopes:
        by_period.setdefault(period_key(period, now), []).append(scope_id)
    spent: dict[str, int] = {}
    async with engine.connect() as conn:
        for period, ids in by_period.items():
            query = (
                select(column.label("scope"), func.coalesce(func.sum(u.c.cost_pico), 0))
                .where(column.in_(ids))
                .group_by(column)
            )
            start, end = period_start(period), period_end(period)
            if start is not None:
                query = query.where(u.c.created_at >= start)
            if end is not None:
                query = query.where(u.c.created_at < end)
            for scope, cost in await conn.execute(query):
                spent[scope] = int(cost)
    out = [
        BudgetUse(kind, sid, name, period, budget, spent.get(sid, 0))
        for sid, name, budget, period in scopes
    ]
    return sorted(out, key=lambda b: (-b.share, b.name))
