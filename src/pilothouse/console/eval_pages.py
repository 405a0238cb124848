"""Console pages for evaluations: runs, one run (metrics, slices, gates, cases), compare, review.

Everything is read from the eval store the harness writes (``EvalStore``);
statistics come from the harness's own analysis module, so a number here is
the number ``pilothouse eval show`` prints. Labelling a review item calls the
harness's :func:`label_item`; the labels feed ``eval calibrate`` through
``pilothouse review export``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pilothouse import audit
from pilothouse.console.auth import Session, check_session_csrf
from pilothouse.console.web import PREFIX, cross_site, read_form, redirect
from pilothouse.evals.analysis import compare_metric, reported_metrics
from pilothouse.evals.errors import EvalError
from pilothouse.evals.model import RunRecord
from pilothouse.evals.review import label_item, pending_count
from pilothouse.evals.store import EvalStore
from pilothouse.evals.tables import eval_review
from pilothouse.gateway.authz import allows
from pilothouse.gateway.runtime import Runtime

if TYPE_CHECKING:
    from pilothouse.console.handlers import Console

BASE = f"{PREFIX}/evals"
MAX_CASES = 500
REDACTED = "(content hidden for the viewer role)"


def _cases(record: RunRecord, only_failed: bool, redact: bool) -> list[dict[str, Any]]:
    out = []
    for case_id, samples in record.by_case().items():
        case = record.cases[case_id]
        failed = any(s.error for s in samples) or any(
            v.passed is False for s in samples for v in s.verdicts
        )
        if only_failed and not failed:
            continue
        out.append(
            {
                "id": case_id,
                "input": REDACTED if redact else case.prompt_text(),
                "expected": None if redact else case.expected,
                "metadata": case.metadata,
                "failed": failed,
                "samples": [
                    {
                        "repeat": s.repeat,
                        "output": REDACTED if redact and s.output is not None else s.output,
                        "error": s.error,
                        "cached": s.cached,
                        "latency_ms": s.latency_ms,
                        "request_ids": s.request_ids,
                        "trace_id": s.trace_id,
                        "verdicts": s.verdicts,
                    }
                    for s in samples
                ],
            }
        )
    return out


class EvalPages:
    def __init__(self, console: Console) -> None:
        self.console = console

    def store(self, rt: Runtime) -> EvalStore:
        return EvalStore(rt.engine)

    def _missing(self, request: Request, session: Session, message: str) -> Response:
        return self.console.render(
            request, "error.html", session, 404, nav="evals", title="Not found", message=message
        )

    async def runs_page(self, rt: Runtime, request: Request, session: Session) -> Response:
        suite = (request.query_params.get("suite") or "").strip()[:200] or None
        store = self.store(rt)
        runs = await store.list_runs(suite=suite, limit=100)
        return self.console.render(
            request, "evals.html", session, nav="evals", runs=runs, suite=suite or "",
            pending=await pending_count(store),
        )  # fmt: skip

    async def run_page(self, rt: Runtime, request: Request, session: Session) -> Response:
        store = self.store(rt)
        try:
            record = await store.load_run(request.path_params["run_id"][:40])
        except EvalError as exc:
            return self._missing(request, session, exc.message)
        only_failed = request.query_params.get("failed") == "1"
        cases = _cases(record, only_failed, session.principal.role == "viewer")
        summary = record.info.summary or {}
        metrics = summary.get("metrics") or []
        return self.console.render(
            request, "eval_run.html", session, nav="evals", info=record.info, summary=summary,
            overall=[m for m in metrics if m.get("slice") is None],
            slices=[m for m in metrics if m.get("slice") is not None],
            cases=cases[:MAX_CASES], more=max(len(cases) - MAX_CASES, 0),
            only_failed=only_failed,
        )  # fmt: skip

    async def compare_page(self, rt: Runtime, request: Request, session: Session) -> Response:
        refs = [(request.query_params.get(k) or "").strip()[:40] for k in ("a", "b")]
        store = self.store(rt)
        runs = await store.list_runs(limit=100)
        if not all(refs):
            return self.console.render(
                request, "eval_compare.html", session, nav="evals", runs=runs, refs=refs,
                a=None, b=None, rows=[],
            )  # fmt: skip
        try:
            base, current = [await store.load_run(await store.resolve_run_id(r)) for r in refs]
        except EvalError as exc:
            return self._missing(request, session, exc.message)
        rows = []
        shared = [m for m in reported_metrics(current) if m in set(reported_metrics(base))]
        for metric in shared:
            found = compare_metric(
                current, base, metric, None,
                resamples=current.info.bootstrap, seed=current.info.seed,
            )  # fmt: skip
            if found is not None:
                rows.append(found)
        return self.console.render(
            request, "eval_compare.html", session, nav="evals", runs=runs, refs=refs,
            a=base.info, b=current.info, rows=rows,
        )  # fmt: skip

    async def review_page(self, rt: Runtime, request: Request, session: Session) -> Response:
        from sqlalchemy import select

        run_id = (request.query_params.get("run") or "").strip()[:40] or None
        query = select(eval_review).where(eval_review.c.status == "pending")
        if run_id:
            query = query.where(eval_review.c.run_id == run_id)
        query = query.order_by(eval_review.c.created_at, eval_review.c.id).limit(20)
        async with rt.engine.connect() as conn:
            items = [dict(r._mapping) for r in await conn.execute(query)]
        done = (request.query_params.get("labelled") or "")[:40]
        redact = session.principal.role == "viewer"
        return self.console.render(
            request, "eval_review.html", session, nav="evals", items=items, run_id=run_id or "",
            pending=await pending_count(self.store(rt), run_id), redact=redact,
            notice=f"Label saved for {done}." if done else "",
            may_label=allows(session.principal.role, "evals.review"),
        )  # fmt: skip

    async def label(self, rt: Runtime, request: Request, session: Session) -> Response:
        form = await read_form(request)
        if cross_site(request) or not check_session_csrf(session, form.get("csrf_token")):
            return self.console.forbidden(request, session)
        item_id = request.path_params["item_id"][:40]
        try:
            item = await label_item(
                self.store(rt), item_id, form.get("label", ""),
                (form.get("note") or "").strip()[:2000] or None,
            )  # fmt: skip
        except EvalError as exc:
            return self.console.render(
                request, "error.html", session, 400, nav="evals", title="Label refused",
                message=exc.message,
            )  # fmt: skip
        await audit.append(
            rt.engine,
            actor=session.principal.name,
            action="eval.label",
            target=item.id,
            details={
                "run_id": item.run_id,
                "case_id": item.case_id,
                "scorer": item.scorer,
                "label": item.label,
            },
        )
        back = f"{BASE}/review?labelled={quote(item.case_id, safe='')}"
        run = form.get("run") or ""
        return redirect(back + (f"&run={quote(run, safe='')}" if run else ""))

    def routes(self) -> list[BaseRoute]:
        page = self.console.page
        return [
            Route(BASE, page(self.runs_page, "evals.read"), methods=["GET"]),
            Route(BASE + "/compare", page(self.compare_page, "evals.read"), methods=["GET"]),
            Route(BASE + "/review", page(self.review_page, "evals.read"), methods=["GET"]),
            Route(BASE + "/review/{item_id}", page(self.label, "evals.review"), methods=["POST"]),
            Route(BASE + "/{run_id}", page(self.run_page, "evals.read"), methods=["GET"]),
        ]
