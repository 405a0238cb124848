"""Admin API for routing: force or lift degraded mode per alias (operator role, audited)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse import audit
from pilothouse.errors import InvalidRequestError
from pilothouse.gateway.routes_admin import admin, principal_of
from pilothouse.gateway.routes_openai import json_response
from pilothouse.gateway.routes_prompts import _body, _reason
from pilothouse.gateway.runtime import Runtime


async def set_degrade(rt: Runtime, request: Request) -> Response:
    body = await _body(rt, request)
    unknown = sorted(set(body) - {"alias", "on", "reason"})
    if unknown:
        raise InvalidRequestError(f"unknown field(s): {', '.join(unknown)}", param=unknown[0])
    alias, on = body.get("alias"), body.get("on")
    if not isinstance(alias, str) or not alias:
        raise InvalidRequestError("`alias` must be a model alias", param="alias")
    if not isinstance(on, bool):
        raise InvalidRequestError("`on` must be true or false", param="on")
    reason = _reason(body)
    route = rt.router.route(alias)  # 404 for an unknown alias
    if route.config.degrade is None:
        raise InvalidRequestError(
            f"model `{alias}` has no `degrade` section (degrade.when_all_open) to degrade to",
            param="alias",
            code="no_degrade_config",
        )
    actor = principal_of(request).name
    await rt.degrade.set(alias, on, actor)
    await audit.append(
        rt.engine,
        actor=actor,
        action="routing.degrade" if on else "routing.restore",
        target=alias,
        details={"on": on, "to": route.config.degrade.when_all_open, "reason": reason},
    )
    return json_response(
        {"alias": alias, "on": on, "degrade_to": route.config.degrade.when_all_open}
    )


async def list_degrade(rt: Runtime, request: Request) -> Response:
    return json_response({"data": rt.degrade.public()})


def routes() -> list[Route]:
    return [
        Route("/admin/degrade", admin(set_degrade, "routing.degrade"), methods=["POST"]),
        Route("/admin/degrade", admin(list_degrade, "routes.read"), methods=["GET"]),
    ]
