"""Admin API for teams and users: ``/admin/teams`` and ``/admin/users`` (CRUD, audited).

Writes need the admin role (``teams.write``); reads ``teams.read``. A change
reaches every replica within a second (``Runtime.key_changed``: pub/sub, with
the store's ``updated_at`` poll as the safety net).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.gateway.routes_admin import _json_body, admin, principal_of
from pilothouse.gateway.routes_openai import json_response
from pilothouse.gateway.runtime import Runtime
from pilothouse.limits.budget import period_key
from pilothouse.limits.money import pico_to_str
from pilothouse.limits.scopes import ScopeRecord

PATHS = {"team": ("/admin/teams", "team_id"), "user": ("/admin/users", "user_id")}


async def _view(rt: Runtime, record: ScopeRecord) -> dict[str, Any]:
    """The record plus its spend in the current budget period and what is left of the budget."""
    period = period_key(record.budget_period)
    spent = await rt.spent_from_ledger(record.id, period)
    left = None
    if record.budget_pico is not None:
        counted = await rt.budgets.spent(record.id, period)
        left = pico_to_str(max(0, record.budget_pico - max(spent, counted)))
    return {**record.public(), "spend_usd": pico_to_str(spent), "budget_left_usd": left}


def _handlers(kind: str) -> list[Route]:
    base, param = PATHS[kind]

    async def create(rt: Runtime, request: Request) -> Response:
        spec = await _json_body(rt, request)
        record = await rt.scopes.create(kind, spec, actor=principal_of(request).name)
        return json_response(await _view(rt, record), status=201)

    async def list_all(rt: Runtime, request: Request) -> Response:
        team_id = request.query_params.get("team_id") or None
        records = await rt.scopes.list_all(kind, team_id=team_id)
        return json_response({"data": [await _view(rt, r) for r in records]})

    async def show(rt: Runtime, request: Request) -> Response:
        record = await rt.scopes.get(kind, request.path_params[param])
        return json_response(await _view(rt, record))

    async def patch(rt: Runtime, request: Request) -> Response:
        body = await _json_body(rt, request)
        scope_id = request.path_params[param]
        record, moved_keys = await rt.scopes.update(
            kind, scope_id, body, actor=principal_of(request).name
        )
        await rt.key_changed(scope_id)
        for key_id in moved_keys:
            await rt.key_changed(key_id)
        return json_response(await _view(rt, record))

    async def delete(rt: Runtime, request: Request) -> Response:
        scope_id = request.path_params[param]
        record = await rt.scopes.delete(kind, scope_id, actor=principal_of(request).name)
        await rt.key_changed(scope_id)
        return json_response({**record.public(), "deleted": True})

    item = f"{base}/{{{param}}}"
    return [
        Route(base, admin(create, "teams.write"), methods=["POST"]),
        Route(base, admin(list_all, "teams.read"), methods=["GET"]),
        Route(item, admin(show, "teams.read"), methods=["GET"]),
        Route(item, admin(patch, "teams.write"), methods=["PATCH"]),
        Route(item, admin(delete, "teams.write"), methods=["DELETE"]),
    ]


def routes() -> list[Route]:
    return [*_handlers("team"), *_handlers("user")]
