"""Console playground and replay: send a request as the signed-in principal, watch it stream.

``GET /console/playground`` is the form; ``POST /console/playground/run`` (CSRF
token in the form, same-origin only) answers with server-sent events from
console/playground.py; ``GET /console/requests/{id}/replay`` puts a stored
answer beside a new one for the same conversation, against the same or another
alias or prompt version. All three need ``playground.use`` (admin, operator):
a viewer may not see content, and finance may not spend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pilothouse.console import playground, queries
from pilothouse.console.auth import Session, check_session_csrf
from pilothouse.console.reconstruct import reconstruct
from pilothouse.console.web import PREFIX, cross_site, read_form, secure
from pilothouse.errors import InvalidRequestError, NotFoundError, PilothouseError
from pilothouse.gateway.runtime import Runtime
from pilothouse.gateway.sse import SSE_HEADERS, ManagedStream
from pilothouse.providers.base import JSON

if TYPE_CHECKING:
    from pilothouse.console.handlers import Console

ACTION = "playground.use"
SOURCE = "console.playground"
# What a replay carries over from the stored request besides its messages.
_NOT_CARRIED = frozenset({"model", "messages", "stream", "stream_options", "prompt_variables"})


def _json_error(status: int, message: str, request_id: str | None = None) -> Response:
    body = {"error": {"message": message, "request_id": request_id}}
    return secure(Response(orjson.dumps(body), status, media_type="application/json"))


def stored_request(record: queries.RequestRecord) -> JSON | None:
    """The request body as the trace stored it (``None`` when content capture was off)."""
    content = (record.trace or {}).get("content")
    request = content.get("request") if isinstance(content, dict) else None
    if isinstance(request, dict) and isinstance(request.get("messages"), list):
        return request
    return None


def original_target(record: queries.RequestRecord) -> str:
    trace = record.trace or {}
    usage = record.usage or {}
    name = trace.get("prompt_name") or usage.get("prompt_name")
    version = trace.get("prompt_version") or usage.get("prompt_version")
    if name and version:
        return f"prompt:{name}@{version}"
    return str(usage.get("alias") or trace.get("alias") or "")


class PlaygroundPages:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def _choices(self, rt: Runtime, session: Session) -> tuple[list[str], str | None]:
        """Targets to suggest (aliases this key may use, prompt labels) or why there are none."""
        try:
            key = await playground.principal_key(rt, session)
        except PilothouseError as exc:
            return [], exc.message
        targets = playground.allowed_aliases(rt, key)
        for p in await rt.prompts.list_prompts():
            targets += [f"prompt:{p['name']}@{label}" for label in sorted(p["labels"])]
            targets.append(f"prompt:{p['name']}@{p['latest_version']}")
        return targets, None

    async def page(self, rt: Runtime, request: Request, session: Session) -> Response:
        targets, refused = await self._choices(rt, session)
        wanted = (request.query_params.get("target") or "").strip()[:300]
        return self.console.render(
            request, "playground.html", session, nav="playground", targets=targets,
            refused=refused, target=wanted or (targets[0] if targets else ""),
        )  # fmt: skip

    async def replay_page(self, rt: Runtime, request: Request, session: Session) -> Response:
        request_id = request.path_params["request_id"][:64]
        await rt.ledger.flush()
        await rt.telemetry.traces.flush()
        record = await queries.load_request(rt.engine, request_id)
        if not record.found:
            return self.console.render(
                request, "error.html", session, 404, nav="requests", title="Not found",
                message=f"There is no request {request_id} in the store.",
            )  # fmt: skip
        targets, refused = await self._choices(rt, session)
        stored = stored_request(record)
        rec = reconstruct((record.trace or {}).get("content"), record.spans)
        return self.console.render(
            request, "replay.html", session, nav="requests", request_id=request_id,
            rec=rec, stored=stored is not None, targets=targets, refused=refused,
            target=original_target(record), capture=rt.settings.telemetry.capture_content,
        )  # fmt: skip

    async def _replay_body(
        self, rt: Runtime, form: dict[str, str], request_id: str
    ) -> tuple[JSON, JSON]:
        await rt.ledger.flush()
        await rt.telemetry.traces.flush()
        record = await queries.load_request(rt.engine, request_id)
        if not record.found:
            raise NotFoundError(f"there is no request {request_id} in the store")
        stored = stored_request(record)
        if stored is None:
            raise InvalidRequestError(
                "this request's content was not captured (telemetry.capture_content), "
                "so there is nothing to replay",
                param="replay_of",
            )
        target = playground.target_of(form)
        messages: list[JSON] = list(stored["messages"])
        trace = record.trace or {}
        name, version = trace.get("prompt_name"), trace.get("prompt_version")
        if target.startswith("prompt:") and name and version:
            # The stored messages begin with the old version's rendered template; the new
            # version renders its own, so only the caller's own turns are sent again.
            old, _ = await rt.prompts.resolve(str(name), str(version))
            messages = messages[len(old.content.get("messages") or []) :]
        body = playground.request_body(form, messages)
        if not target.startswith("prompt:"):
            carried = {k: v for k, v in stored.items() if k not in _NOT_CARRIED}
            body = {**carried, **body}
        return body, {"replay_of": request_id}

    async def run(self, rt: Runtime, request: Request, session: Session) -> Response:
        form = await read_form(request)
        if cross_site(request) or not check_session_csrf(session, form.get("csrf_token")):
            return _json_error(403, "This form is missing its security token; reload the page.")
        replay_of = form.get("replay_of", "").strip()[:64]
        metadata: JSON = {"source": SOURCE, "console_principal": session.principal.name}
        try:
            if replay_of:
                body, extra = await self._replay_body(rt, form, replay_of)
                metadata.update(extra)
            else:
                body = playground.request_body(form)
            ctx, upstream = await playground.start(rt, session, request, body, metadata)
        except PilothouseError as exc:
            return _json_error(exc.status, exc.message)
        close = playground.closer(rt, ctx, upstream)
        events: Any = playground.relay(ctx, upstream, close)
        headers = {**SSE_HEADERS, "x-request-id": ctx.request_id}
        return secure(ManagedStream(events, close, headers))

    def routes(self) -> list[BaseRoute]:
        page = self.console.page
        return [
            Route(f"{PREFIX}/playground", page(self.page, ACTION), methods=["GET"]),
            Route(f"{PREFIX}/playground/run", page(self.run, ACTION), methods=["POST"]),
            Route(
                f"{PREFIX}/requests/{{request_id}}/replay",
                page(self.replay_page, ACTION),
                methods=["GET"],
            ),
        ]
