"""The guards page: blocks, redactions and flags over time, by guard, entity type, key
and alias, each figure a link to the request log filtered to exactly those requests.

Figures are read from the enforcement receipts on the traces (one
``guard.enforcement`` span per guarded request), counted per request at the
grain of the receipt summary — the most severe verdict per stage and guard —
which is the grain the request log's ``guard``/``verdict``/``entity`` filters
match (console/guard_filter.py). Receipts hold no sensitive values, so every
role that reads traces may open it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pilothouse.console import charts, queries
from pilothouse.console.auth import Session
from pilothouse.console.charts import Chart, Point, Segment
from pilothouse.console.formatting import count
from pilothouse.console.guard_filter import ACTIONS, RECEIPT_SPAN
from pilothouse.console.receipts import guard_run, worst_per_guard
from pilothouse.console.web import PREFIX
from pilothouse.gateway.runtime import Runtime
from pilothouse.guard.state import SEVERITY
from pilothouse.store.tables import spans, traces

if TYPE_CHECKING:
    from pilothouse.console.handlers import Console

DEFAULT_RANGE = "7d"
MAX_RECEIPTS = 20_000  # newest first; the page says when the range holds more
ACTION_NAMES = {
    "error": "Guard errors",
    "block": "Blocked",
    "redact": "Redacted",
    "pseudonymize": "Pseudonymized",
    "flag": "Flagged",
}


@dataclass(slots=True)
class Tally:
    """Requests per action for one group (a guard, a key, an alias, a time bucket)."""

    label: str
    link: list[tuple[str, str]]  # the request-log filter that selects this group
    requests: int = 0  # guarded requests (any verdict)
    actions: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class EntityTally:
    entity: str
    requests: int = 0
    found: int = 0
    guards: set[str] = field(default_factory=set)


@dataclass(slots=True)
class GuardReport:
    guarded: int = 0
    truncated: bool = False
    totals: Counter[str] = field(default_factory=Counter)
    buckets: dict[datetime, Counter[str]] = field(default_factory=dict)
    by_guard: dict[str, Tally] = field(default_factory=dict)
    by_key: dict[str, Tally] = field(default_factory=dict)
    by_alias: dict[str, Tally] = field(default_factory=dict)
    by_entity: dict[str, EntityTally] = field(default_factory=dict)


def bucket_size(since: datetime, until: datetime) -> timedelta:
    return timedelta(hours=1) if until - since <= timedelta(hours=48) else timedelta(days=1)


def _floor(at: datetime, size: timedelta) -> datetime:
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    at = at.astimezone(UTC)
    if size >= timedelta(days=1):
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    return at.replace(minute=0, second=0, microsecond=0)


def tally_row(report: GuardReport, row: dict[str, Any], size: timedelta) -> None:
    """Count one request's receipt into the report."""
    runs = [
        guard_run(e.get("attributes") or {})
        for e in (row.get("events") or [])
        if isinstance(e, dict) and e.get("name") == "guard.run"
    ]
    worst = worst_per_guard(runs)
    report.guarded += 1
    acted = {v for v in worst.values() if v in ACTIONS}
    per_guard: dict[str, set[str]] = defaultdict(set)
    for (_, guard), verdict in worst.items():
        per_guard[guard].add(verdict)
    for guard, verdicts in per_guard.items():
        tally = report.by_guard.setdefault(guard, Tally(guard, [("guard", guard)]))
        tally.requests += 1
        tally.actions.update(v for v in verdicts if v in ACTIONS)
    key = row.get("key_id") or ""
    alias = row.get("alias") or ""
    for group, name, param in ((report.by_key, key, "key"), (report.by_alias, alias, "model")):
        tally = group.setdefault(name, Tally(name, [(param, name)] if name else []))
        tally.requests += 1
        tally.actions.update(acted)
    report.totals.update(acted)
    if acted:  # the time series counts each request once, by its most severe action
        top = max(acted, key=lambda v: SEVERITY.get(v, 0))
        report.buckets.setdefault(_floor(row["created_at"], size), Counter())[top] += 1
    found: dict[str, int] = Counter()
    found_by: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        for entity, n in run.entities:
            found[entity] += n
            found_by[entity].add(run.guard)
    for entity, n in found.items():
        et = report.by_entity.setdefault(entity, EntityTally(entity))
        et.requests += 1
        et.found += n
        et.guards |= found_by[entity]


async def guard_report(
    rt: Runtime, since: datetime, until: datetime, key_id: str | None, alias: str | None
) -> GuardReport:
    query = (
        select(traces.c.created_at, traces.c.key_id, traces.c.alias, spans.c.events)
        .select_from(traces.join(spans, spans.c.trace_id == traces.c.trace_id))
        .where(spans.c.name == RECEIPT_SPAN, traces.c.created_at >= since)
        .where(traces.c.created_at < until)
        .order_by(traces.c.created_at.desc())
        .limit(MAX_RECEIPTS + 1)
    )
    if key_id:
        query = query.where(traces.c.key_id == key_id)
    if alias:
        query = query.where(traces.c.alias == alias)
    report = GuardReport()
    size = bucket_size(since, until)
    async with rt.engine.connect() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(query)]
    report.truncated = len(rows) > MAX_RECEIPTS
    for row in rows[:MAX_RECEIPTS]:
        tally_row(report, row, size)
    return report


def timeline(report: GuardReport, since: datetime, until: datetime) -> Chart:
    size = bucket_size(since, until)
    hourly = size < timedelta(days=1)
    points: list[Point] = []
    at = _floor(since, size)
    while at < until and len(points) < 24 * 62:
        counts = report.buckets.get(at, Counter())
        segs = tuple(
            Segment(f"guard-{a}", ACTION_NAMES[a], float(counts[a]), count(counts[a]))
            for a in ACTIONS
        )
        label = at.strftime("%Y-%m-%d %H:00" if hourly else "%Y-%m-%d")
        points.append(Point(label, segs, at.strftime("%H:00" if hourly else "%m-%d")))
        at += size
    title = f"Guarded requests that were acted on, per {'hour' if hourly else 'day'} (UTC)"
    return charts.columns(title, points, lambda v: f"{v:g}", integer=True)


class GuardPages:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def guards_page(self, rt: Runtime, request: Request, session: Session) -> Response:
        params = dict(request.query_params)
        params.setdefault("since", DEFAULT_RANGE)
        parsed = queries.parse_filters(params)
        f = parsed.filters
        now = datetime.now(UTC)
        since = f.since or now - timedelta(days=7)
        until = f.until or now
        await rt.telemetry.traces.flush()
        report = await guard_report(rt, since, until, f.key_id, f.alias)
        keys = await queries.list_keys(rt.engine)
        # Every drill-down keeps the page's range and narrowing.
        scope = [
            (k, v) for k, v in f.query_items() if k in ("range", "since", "until", "key", "model")
        ]
        if not f.since_text and not f.until_text:
            scope.append(("since", since.strftime("%Y-%m-%dT%H:%M")))
        return self.console.render(
            request, "guards.html", session, nav="guards", errors=parsed.errors,
            filters=f, since=f.since_text, until=f.until_text, report=report,
            timeline_chart=timeline(report, since, until), actions=ACTIONS,
            action_names=ACTION_NAMES,
            keys=keys, key_names={k.id: k.name for k in keys}, scope=scope,
            aliases=sorted(rt.settings.models), max_receipts=MAX_RECEIPTS,
        )  # fmt: skip

    def routes(self) -> list[BaseRoute]:
        page = self.console.page(self.guards_page, "traces.read")
        return [Route(f"{PREFIX}/guards", page, methods=["GET"])]
