"""Console pages for rollouts: running and past rollouts, and one rollout's live figures.

The figures are exactly ``GET /admin/rollouts/{id}`` (``rollout.actions.status``):
both arms with their anytime-valid intervals, each guard's statistic against its
boundary (now, and over time from ``rollout.history``), and the SRM check.
Promote and roll back call ``rollout.actions`` with the signed-in principal as
actor, so the release policy, the label move and the audit rows are the API's;
both need ``rollouts.write`` and the session's CSRF token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pilothouse.console import charts
from pilothouse.console.auth import Session, check_session_csrf
from pilothouse.console.web import PREFIX, cross_site, read_form, redirect
from pilothouse.errors import NotFoundError, PilothouseError
from pilothouse.gateway.authz import allows
from pilothouse.gateway.routes_rollouts import parts
from pilothouse.gateway.runtime import Runtime
from pilothouse.rollout import actions

if TYPE_CHECKING:
    from pilothouse.console.handlers import Console

BASE = f"{PREFIX}/rollouts"
ARM_ROWS = (
    ("requests", "Requests"),
    ("errors", "Errors"),
    ("error_rate", "Error rate"),
    ("latency_p50_s", "Latency p50 (s)"),
    ("latency_p95_s", "Latency p95 (s)"),
    ("ttft_mean_s", "TTFT mean (s)"),
    ("cost_per_request_usd", "Cost per request (USD)"),
)
GUARD_SHOWN = ("metric", "state", "samples", "alpha")


def guard_trends(series: dict[str, list[dict[str, Any]]]) -> list[charts.Chart]:
    """One chart per guard: its statistic at each recorded point against its boundary."""
    out = []
    for metric, points in series.items():
        bounds = [p["boundary"] for p in points if p["boundary"] is not None]
        boundary = bounds[-1] if bounds else None
        out.append(
            charts.trend(
                f"{metric}: statistic against its boundary",
                [(p["at"][11:19], p["statistic"]) for p in points],
                lambda v: f"{v:.4g}",
                boundary=boundary,
                empty_text="No statistic yet: waiting for min_samples on both arms.",
            )
        )
    return out


class RolloutPages:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def list_page(self, rt: Runtime, request: Request, session: Session) -> Response:
        rows = await rt.rollouts.store.list_rollouts()
        running = [r.public() for r in rows if r.state == "running"]
        past = [r.public() for r in rows if r.state != "running"]
        return self.console.render(
            request, "rollouts.html", session, nav="rollouts", running=running, past=past
        )

    async def detail_page(
        self, rt: Runtime, request: Request, session: Session, *, status: int = 200,
        errors: list[str] | None = None,
    ) -> Response:  # fmt: skip
        rollout_id = request.path_params["rollout_id"][:64]
        try:
            ro = await rt.rollouts.store.get(rollout_id)
        except NotFoundError as exc:
            return self.console.render(
                request, "error.html", session, 404, nav="rollouts", title="Not found",
                message=exc.message,
            )  # fmt: skip
        figures = await actions.status(parts(rt), ro)
        guards = [
            {"head": {k: g.get(k) for k in GUARD_SHOWN},
             "rest": {k: v for k, v in g.items() if k not in GUARD_SHOWN}}
            for g in figures["guards"]
        ]  # fmt: skip
        done = {"promoted": "Rollout promoted.", "rolled_back": "Rollout rolled back."}
        trends = guard_trends(await rt.rollouts.history.series(ro.id))
        return self.console.render(
            request, "rollout.html", session, status, nav="rollouts", ro=figures,
            arm_rows=ARM_ROWS, guards=guards, errors=errors or [], trends=trends,
            may_write=allows(session.principal.role, "rollouts.write"),
            notice=done.get(request.query_params.get("done") or "", ""),
        )  # fmt: skip

    async def _end(self, rt: Runtime, request: Request, session: Session, how: str) -> Response:
        form = await read_form(request)
        if cross_site(request) or not check_session_csrf(session, form.get("csrf_token")):
            return self.console.forbidden(request, session)
        rollout_id = request.path_params["rollout_id"][:64]
        reason = form.get("reason", "").strip()[:2000] or None
        try:
            if how == "promoted":
                await actions.promote(
                    parts(rt), rollout_id, actor=session.principal.name, reason=reason
                )
            else:
                await actions.rollback(
                    parts(rt), rollout_id, actor=session.principal.name, reason=reason
                )
        except PilothouseError as exc:
            return await self.detail_page(
                rt, request, session, status=exc.status, errors=[exc.message]
            )
        return redirect(f"{BASE}/{rollout_id}?done={how}")

    async def promote(self, rt: Runtime, request: Request, session: Session) -> Response:
        return await self._end(rt, request, session, "promoted")

    async def rollback(self, rt: Runtime, request: Request, session: Session) -> Response:
        return await self._end(rt, request, session, "rolled_back")

    def routes(self) -> list[BaseRoute]:
        page = self.console.page
        one = BASE + "/{rollout_id}"
        return [
            Route(BASE, page(self.list_page, "rollouts.read"), methods=["GET"]),
            Route(one, page(self.detail_page, "rollouts.read"), methods=["GET"]),
            Route(one + "/promote", page(self.promote, "rollouts.write"), methods=["POST"]),
            Route(one + "/rollback", page(self.rollback, "rollouts.write"), methods=["POST"]),
        ]
