"""The dashboards page (``/console/dashboards``): latency and TTFT percentiles per alias over
time, error and cache-hit rates, what the cache saved, and budget used per key and team.

Numbers only, never content, so every role that reads usage sees it (viewers too).
The time range is the request log's picker (presets, or a custom range to the hour).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pilothouse.console import charts, dashboard_queries, linechart, queries
from pilothouse.console.auth import Session
from pilothouse.console.charts import Point, Segment
from pilothouse.console.dashboard_queries import Dashboard, Rates
from pilothouse.console.web import PREFIX
from pilothouse.gateway.runtime import Runtime

if TYPE_CHECKING:
    from pilothouse.console.handlers import Console

DEFAULT_RANGE = "24h"


def _ms(value: float) -> str:
    return f"{value:,.0f} ms"


def _pct(value: float) -> str:
    return f"{value:.0f}%" if value == int(value) else f"{value:.1f}%"


def rate_chart(title: str, board: Dashboard, series: str, rate: str) -> charts.Chart:
    points = []
    for label in board.buckets:
        r = board.per_bucket.get(label, Rates())
        value = 100.0 * (r.error_rate if rate == "error" else r.hit_rate)
        shown = r.errors if rate == "error" else r.cache_hits
        text = f"{_pct(round(value, 1))} ({shown} of {r.requests})"
        points.append(
            Point(label, (Segment(series, title, value, text),), linechart.short_bucket(label))
        )
    return charts.columns(title, points, _pct)


def alias_charts(board: Dashboard) -> list[tuple[str, charts.Chart, charts.Chart]]:
    out = []
    for stats in board.aliases[: dashboard_queries.MAX_ALIASES]:
        pair = []
        for name, data in (("Latency", board.latency_series), ("TTFT", board.ttft_series)):
            per_bucket = data.get(stats.alias, {})
            series = [
                (p, p, {b: v.get(p) for b, v in per_bucket.items()})
                for p, _ in dashboard_queries.PERCENTILES
            ]
            title = f"{name} · {stats.alias}"
            empty = f"No successful request recorded a {name.lower()} in this range."
            pair.append(linechart.lines(title, board.buckets, series, _ms, empty))
        out.append((stats.alias, pair[0], pair[1]))
    return out


class DashboardPages:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def dashboards(self, rt: Runtime, request: Request, session: Session) -> Response:
        params = dict(request.query_params)
        if not params.get("range") and not params.get("since"):
            params["range"] = DEFAULT_RANGE
        parsed = queries.parse_filters(params)
        f = parsed.filters
        errors = [e for e in parsed.errors if "range" in e or "since" in e or "until" in e]
        until = f.until or datetime.now(UTC)
        since = f.since or until - dashboard_queries.HOURLY_UP_TO / 3
        if since >= until:
            since = until - dashboard_queries.HOURLY_UP_TO / 3
        await rt.ledger.flush()
        board = await dashboard_queries.dashboard(rt.engine, since, until)
        keys = [
            (k.id, k.name, k.budget_pico, k.budget_period)
            for k in await rt.keys.list_all()
            if k.budget_pico is not None
        ]
        teams = [
            (t.id, t.name, t.budget_pico, t.budget_period)
            for t in await rt.scopes.list_all("team")
            if t.budget_pico is not None
        ]
        budgets: list[tuple[str, list[Any]]] = [
            ("key", await dashboard_queries.budget_use(rt.engine, "key", keys)),
            ("team", await dashboard_queries.budget_use(rt.engine, "team", teams)),
        ]
        return self.console.render(
            request, "dashboards.html", session, nav="dashboards", errors=errors, filters=f,
            range_presets=queries.RANGE_PRESETS, since=since, until=until, board=board,
            alias_charts=alias_charts(board),
            error_chart=rate_chart("Error rate", board, "error", "error"),
            hit_chart=rate_chart("Cache hit rate", board, "hit", "hit"),
            budgets=budgets,
        )  # fmt: skip

    def routes(self) -> list[BaseRoute]:
        path = f"{PREFIX}/dashboards"
        return [Route(path, self.console.page(self.dashboards, "usage.read"), methods=["GET"])]
