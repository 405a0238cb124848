"""Annotating a request from its console page: feedback and "send to the review queue".

Feedback goes through the same validation and ``record_feedback`` as
``POST /v1/feedback`` (so it lands in the ``feedback`` table that the cost
report and the users page join on), stored under the annotator's key with
``metadata.source = console``. Sending a request to review adds an item to the
eval review queue under the pseudo-run ``console`` (scorer ``human``), with the
request's conversation and answer as stored, so it is labelled and exported
like any judge verdict. Both writes are CSRF-checked and audited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pilothouse import audit
from pilothouse.console import queries
from pilothouse.console.auth import Session, check_session_csrf
from pilothouse.console.reconstruct import reconstruct
from pilothouse.console.web import PREFIX, cross_site, read_form, redirect
from pilothouse.costs.feedback import record_feedback, validate_feedback
from pilothouse.errors import InvalidRequestError, NotFoundError, PilothouseError
from pilothouse.evals.store import new_id
from pilothouse.evals.tables import eval_review
from pilothouse.gateway.runtime import Runtime
from pilothouse.limits.keys import KeyRecord

if TYPE_CHECKING:
    from pilothouse.console.handlers import Console

REVIEW_RUN = "console"
SCORES = range(1, 6)


def feedback_body(request_id: str, form: dict[str, str], annotator: str) -> dict[str, Any]:
    """The ``/v1/feedback`` body a form means: thumbs, a 1-5 score, a comment."""
    body: dict[str, Any] = {
        "request_id": request_id,
        "metadata": {"source": "console", "annotator": annotator},
    }
    thumbs = form.get("thumbs", "").strip()
    if thumbs not in ("", "up", "down"):
        raise InvalidRequestError("`thumbs` must be up or down", param="thumbs")
    if thumbs:
        body["success"] = thumbs == "up"
    score = form.get("score", "").strip()
    if score:
        if not score.isdigit() or int(score) not in SCORES:
            raise InvalidRequestError("`score` must be a whole number from 1 to 5", param="score")
        body["score"] = int(score)
    comment = form.get("comment", "").strip()
    if comment:
        body["comment"] = comment
    return body


def annotator_key(session: Session) -> KeyRecord:
    """The signed-in principal as the feedback's author (admin scope: any request may be rated)."""
    p = session.principal
    return KeyRecord(
        id=p.key_id or p.name, name=p.name, prefix="", scopes=frozenset({"admin"}),
        models=None, rpm=None, tpm=None,
    )  # fmt: skip


def _text(messages: list[Any]) -> str:
    return "\n\n".join(f"{m.role}: {m.text}" for m in messages if m.text)


class AnnotatePages:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def _form(self, request: Request, session: Session) -> dict[str, str] | None:
        form = await read_form(request)
        if cross_site(request) or not check_session_csrf(session, form.get("csrf_token")):
            return None
        return form

    def _error(self, request: Request, session: Session, exc: PilothouseError) -> Response:
        return self.console.render(
            request, "error.html", session, exc.status, nav="requests",
            title="Not saved", message=exc.message,
        )  # fmt: skip

    async def feedback(self, rt: Runtime, request: Request, session: Session) -> Response:
        form = await self._form(request, session)
        if form is None:
            return self.console.forbidden(request, session)
        request_id = request.path_params["request_id"][:64]
        who = session.principal.name
        try:
            body = feedback_body(request_id, form, who)
            item = validate_feedback(body)
            stored = await record_feedback(
                rt.engine, annotator_key(session), item, flush=rt.ledger.flush
            )
        except PilothouseError as exc:
            return self._error(request, session, exc)
        await audit.append(
            rt.engine, actor=who, action="request.annotate", target=request_id,
            details={"feedback_id": stored["id"], "success": item.success, "score": item.score},
        )  # fmt: skip
        return redirect(f"{PREFIX}/requests/{quote(request_id, safe='')}?annotated=feedback")

    async def review(self, rt: Runtime, request: Request, session: Session) -> Response:
        form = await self._form(request, session)
        if form is None:
            return self.console.forbidden(request, session)
        request_id = request.path_params["request_id"][:64]
        await rt.ledger.flush()
        await rt.telemetry.traces.flush()
        record = await queries.load_request(rt.engine, request_id)
        if not record.found:
            return self._error(request, session, NotFoundError(f"no request {request_id!r}"))
        rec = reconstruct((record.trace or {}).get("content"), record.spans)
        payload = {
            "suite": REVIEW_RUN,
            "case": {"id": request_id, "input": _text(rec.messages)},
            "output": _text(rec.response),
            "request_ids": [request_id],
            "sent_by": session.principal.name,
            "verdict": {
                "scorer": "human",
                "explanation": form.get("note", "").strip()[:2000],
                "detail": {"scale": [1, 5, 3]},  # label pass/fail or a 1-5 score
            },
        }
        row = {
            "id": new_id("rv_"), "run_id": REVIEW_RUN, "case_id": request_id, "repeat": 0,
            "scorer": "human", "reason": "sent", "status": "pending", "payload": payload,
            "created_at": datetime.now(UTC),
        }  # fmt: skip
        try:
            async with rt.engine.begin() as conn:
                await conn.execute(eval_review.insert().values(**row))
        except sa.exc.IntegrityError:
            return redirect(f"{PREFIX}/requests/{quote(request_id, safe='')}?annotated=queued")
        await audit.append(
            rt.engine, actor=session.principal.name, action="review.enqueue", target=request_id,
            details={"item": row["id"]},
        )  # fmt: skip
        return redirect(f"{PREFIX}/requests/{quote(request_id, safe='')}?annotated=review")

    def routes(self) -> list[BaseRoute]:
        page = self.console.page
        one = f"{PREFIX}/requests/{{request_id}}"
        return [
            Route(one + "/feedback", page(self.feedback, "evals.review"), methods=["POST"]),
            Route(one + "/review", page(self.review, "evals.review"), methods=["POST"]),
        ]
