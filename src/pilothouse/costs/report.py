"""Cost attribution: who spent what, on which model, and what each success cost.

One SQL aggregation over ``usage_records`` (joined with ``api_keys`` for a
key's default team and with the latest feedback outcome per task), so money
is summed exactly as integers by the database on SQLite and PostgreSQL alike.
JSON fields are read with SQLAlchemy's portable JSON path operators
(``json_extract`` on SQLite, ``->>`` on PostgreSQL).

Definitions (also in docs/costs.md):

* team: the team entity the request was charged to (``usage_records.team_id``,
  shown with its ``team_name``), else the request's ``x-pilothouse-metadata``
  ``team``, else the key's metadata ``team``. ``user`` likewise: the user
  entity (``user_name``), else the request's metadata ``user``.
* task: the request's metadata ``task_id``, else the request id (a request
  without a task id is a task of its own).
* a task succeeded when its most recent feedback carrying ``success`` says
  true; ``cost_per_successful_task`` is the group's whole spend (failures and
  unrated tasks included, so it never flatters) divided by its successful
  tasks, rounded half-up to the pico-USD.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, String, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Subquery

from pilothouse.costs.usage_query import day_bucket, usage_aggregates, usage_counts, user_expr
from pilothouse.costs.usage_query import meta_text as meta_text  # re-exported
from pilothouse.costs.usage_query import team_expr as team_expr  # re-exported
from pilothouse.errors import InvalidRequestError
from pilothouse.limits.money import pico_to_str
from pilothouse.store.tables import api_keys as k
from pilothouse.store.tables import feedback as fb
from pilothouse.store.tables import teams as tm
from pilothouse.store.tables import usage_records as u
from pilothouse.store.tables import users as us

GROUPS: tuple[str, ...] = (
    "key",
    "team",
    "user",
    "feature",
    "model",
    "provider",
    "upstream_model",
    "prompt",
    "day",
)


def parse_groups(text: str | Sequence[str] | None) -> list[str]:
    """``"team,model"`` (or a list) → validated, de-duplicated group names, in order."""
    if text is None:
        return []
    parts = text.split(",") if isinstance(text, str) else list(text)
    groups: list[str] = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if part not in GROUPS:
            raise InvalidRequestError(
                f"`by` must be a comma-separated list drawn from {', '.join(GROUPS)}; got {part!r}",
                param="by",
            )
        if part not in groups:
            groups.append(part)
    return groups


def prompt_expr() -> ColumnElement[Any]:
    """``NAME@VERSION`` of the registry prompt that served a request (NULL for plain aliases)."""
    return u.c.prompt_name + "@" + cast(u.c.prompt_version, String)


def task_expr() -> ColumnElement[Any]:
    return func.coalesce(meta_text(u.c["metadata"], "task_id"), u.c.request_id)


def _group_columns(engine: AsyncEngine, group: str) -> list[ColumnElement[Any]]:
    """Columns selected (and grouped on) for one group name; ``key`` also shows the name."""
    if group == "key":
        return [u.c.key_id.label("key"), k.c.name.label("key_name")]
    if group == "team":
        return [team_expr().label("team"), tm.c.name.label("team_name")]
    if group == "user":
        return [user_expr().label("user"), us.c.name.label("user_name")]
    expr: ColumnElement[Any] = {
        "feature": meta_text(u.c["metadata"], "feature"),
        "model": u.c.alias,
        "provider": u.c.provider,
        "upstream_model": u.c.upstream_model,
        "prompt": prompt_expr(),
        "day": day_bucket(engine.dialect.name, u.c.created_at),
    }[group]
    return [expr.label(group)]


def _outcomes() -> Subquery:
    """The latest feedback with a ``success`` verdict, one row per task."""
    ranked = (
        select(
            fb.c.task_id,
            fb.c.success,
            func.row_number()
            .over(partition_by=fb.c.task_id, order_by=(fb.c.created_at.desc(), fb.c.id.desc()))
            .label("rank"),
        )
        .where(fb.c.success.is_not(None), fb.c.task_id.is_not(None))
        .subquery("ranked")
    )
    return select(ranked.c.task_id, ranked.c.success).where(ranked.c.rank == 1).subquery("outcome")


def _aggregates(outcome: Subquery) -> list[ColumnElement[Any]]:
    task = task_expr()
    return [
        *usage_aggregates(),
        func.count(func.distinct(task)).label("tasks"),
        func.count(func.distinct(case((outcome.c.success.is_not(None), task)))).label(
            "rated_tasks"
        ),
        func.count(func.distinct(case((outcome.c.success.is_(True), task)))).label(
            "successful_tasks"
        ),
        # Latency per group too: `by=prompt` compares prompt versions on speed, not just spend.
        func.avg(u.c.latency_ms).label("latency_ms_avg"),
        func.max(u.c.latency_ms).label("latency_ms_max"),
    ]


def _base_query(
    columns: Sequence[ColumnElement[Any]],
    outcome: Subquery,
    since: datetime | None,
    until: datetime | None,
) -> Select[Any]:
    joined = (
        u.outerjoin(k, k.c.id == u.c.key_id)
        .outerjoin(tm, tm.c.id == u.c.team_id)
        .outerjoin(us, us.c.id == u.c.user_id)
        .outerjoin(outcome, outcome.c.task_id == task_expr())
    )
    query = select(*columns, *_aggregates(outcome)).select_from(joined)
    if since is not None:
        query = query.where(u.c.created_at >= since.astimezone(UTC))
    if until is not None:
        query = query.where(u.c.created_at < until.astimezone(UTC))
    return query


def per_success_pico(cost_pico: int, successes: int) -> int | None:
    """Cost divided by successes, rounded half-up to the pico-USD; ``None`` without successes."""
    if successes <= 0:
        return None
    return (2 * cost_pico + successes) // (2 * successes)


def _totals(row: Any) -> dict[str, Any]:
    counts: dict[str, Any] = usage_counts(row)
    cost = counts.pop("cost_pico")
    successes = int(row.successful_tasks or 0)
    per_success = per_success_pico(cost, successes)
    return {
        **counts,
        "cost_usd": pico_to_str(cost),
        "tasks": int(row.tasks or 0),
        "rated_tasks": int(row.rated_tasks or 0),
        "successful_tasks": successes,
        "cost_per_successful_task_usd": (
            pico_to_str(per_success) if per_success is not None else None
        ),
        "latency_ms_avg": _ms(row.latency_ms_avg),
        "latency_ms_max": _ms(row.latency_ms_max),
    }


def _ms(value: Any) -> float | None:
    return round(float(value), 3) if value is not None else None


def _group_value(value: Any) -> Any:
    """JSON text may come back as a number on SQLite; groups are always text (or null)."""
    if value is None or isinstance(value, str):
        return value
    return str(value)


async def cost_report(
    engine: AsyncEngine,
    *,
    by: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Spend, tokens, errors, cost per successful task and latency, grouped by ``by``.

    Rows are sorted by cost, highest first (by day first when grouping by
    day). The ``total`` counts each task once even when it spans groups, so
    group task counts may add up to more than the total.
    """
    groups = parse_groups(by)
    outcome = _outcomes()
    columns = [c for g in groups for c in _group_columns(engine, g)]
    names = [str(c.key) for c in columns]
    data: list[dict[str, Any]] = []
    async with engine.connect() as conn:
        total = (await conn.execute(_base_query([], outcome, since, until))).one()
        if groups:
            query = _base_query(columns, outcome, since, until).group_by(*columns)
            for row in await conn.execute(query):
                mapping = row._mapping
                entry = {name: _group_value(mapping[name]) for name in names}
                data.append({**entry, **_totals(row), "_cost": int(row.cost_pico or 0)})
    data.sort(key=lambda r: (str(r.get("day") or ""), -r["_cost"]))
    for entry in data:
        del entry["_cost"]
    return {
        "by": groups,
        "since": since.astimezone(UTC).isoformat() if since else None,
        "until": until.astimezone(UTC).isoformat() if until else None,
        "data": data,
        "total": _totals(total),
    }
