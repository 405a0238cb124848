"""Admin API for rollouts: start, list, status, promote, roll back (operator role)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.errors import InvalidRequestError
from pilothouse.gateway.routes_admin import admin, principal_of
from pilothouse.gateway.routes_openai import json_response
from pilothouse.gateway.routes_prompts import _body, _reason
from pilothouse.gateway.runtime import Runtime
from pilothouse.rollout import actions
from pilothouse.rollout.model import STATES


def parts(rt: Runtime) -> actions.Parts:
    return actions.Parts(
        manager=rt.rollouts,
        registry=rt.prompts,
        defaults=rt.settings.rollouts.defaults,
        releases=rt.settings.releases,
        aliases=rt.router.routes.keys(),
        label_moved=rt.label_moved,
        flush_ledger=rt.ledger.flush,
    )


async def start(rt: Runtime, request: Request) -> Response:
    body = await _body(rt, request)
    ro = await actions.start(
        parts(rt), body, actor=principal_of(request).name, reason=_reason(body)
    )
    return json_response(ro.public(), status=201)


async def list_rollouts(rt: Runtime, request: Request) -> Response:
    state = request.query_params.get("state")
    if state is not None and state not in STATES:
        raise InvalidRequestError(f"`state` must be one of {', '.join(STATES)}", param="state")
    rows = await rt.rollouts.store.list_rollouts(state)
    return json_response({"data": [ro.public() for ro in rows]})


async def show(rt: Runtime, request: Request) -> Response:
    ro = await rt.rollouts.store.get(request.path_params["id"])
    return json_response(await actions.status(parts(rt), ro))


async def promote(rt: Runtime, request: Request) -> Response:
    body = await _body(rt, request)
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise InvalidRequestError("`force` must be true or false", param="force")
    out = await actions.promote(
        parts(rt),
        request.path_params["id"],
        actor=principal_of(request).name,
        reason=_reason(body),
        force=force,
    )
    return json_response(out)


async def rollback(rt: Runtime, request: Request) -> Response:
    body = await _body(rt, request)
    out = await actions.rollback(
        parts(rt), request.path_params["id"], actor=principal_of(request).name, reason=_reason(body)
    )
    return json_response(out)


def routes() -> list[Route]:
    base = "/admin/rollouts"
    return [
        Route(base, admin(start, "rollouts.write"), methods=["POST"]),
        Route(base, admin(list_rollouts, "rollouts.read"), methods=["GET"]),
        Route(base + "/{id}", admin(show, "rollouts.read"), methods=["GET"]),
        Route(base + "/{id}/promote", admin(promote, "rollouts.write"), methods=["POST"]),
        Route(base + "/{id}/rollback", admin(rollback, "rollouts.write"), methods=["POST"]),
    ]
