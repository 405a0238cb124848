"""Admin API: keys, usage, config reload; every route checks its action against the role."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.costs.usage_query import parse_time, usage_summary
from pilothouse.errors import (
    AuthenticationError,
    InvalidRequestError,
    PermissionDeniedError,
    PilothouseError,
)
from pilothouse.gateway import admission, validate
from pilothouse.gateway.authz import BOOTSTRAP, Principal, authorize, may_manage_key
from pilothouse.gateway.http_errors import error_response
from pilothouse.gateway.pipeline import new_request_id
from pilothouse.gateway.routes_openai import json_response, read_body
from pilothouse.gateway.runtime import Runtime
from pilothouse.inputs import JsonLimits
from pilothouse.limits.budget import period_key
from pilothouse.limits.key_usage import KeySpend, spend_by_key
from pilothouse.limits.keys import DEFAULT_ROTATION_GRACE_S, KeyRecord
from pilothouse.limits.money import pico_to_str


async def admin_principal(rt: Runtime, secret: str | None, source: str) -> Principal:
    """Who is calling: ``bootstrap`` for the config admin key, else the named admin key.

    Raises 401 for a missing/unknown key (429 once its source or principal is
    throttled, see :func:`admission.check_secret`) and 403 for a key that is no
    admin principal.
    """
    if secret is None:
        raise AuthenticationError("missing admin key: send `Authorization: Bearer <admin key>`")
    record = await admission.check_secret(
        rt, secret, source, message="invalid admin key", bootstrap=True
    )
    if record is None:
        return Principal(BOOTSTRAP, "admin")
    role = record.admin_role
    if role is None:
        raise PermissionDeniedError("this key is not an admin principal", code="not_admin")
    return Principal(record.name, role, record.id)


async def require(rt: Runtime, request: Request, action: str) -> Principal:
    """Authenticate the caller and check ``action`` against its role (the one check)."""
    secret = admission.bearer(request.headers)
    principal = authorize(await admin_principal(rt, secret, admission.source_of(request)), action)
    request.state.principal = principal
    return principal


def principal_of(request: Request) -> Principal:
    """The principal :func:`admin` authorised for this request."""
    principal: Principal = request.state.principal
    return principal


async def require_scope(rt: Runtime, request: Request, scope: str = "admin") -> None:
    """Legacy scope check: a key with ``scope`` passes, else the role must allow ``scope.read``."""
    secret = admission.bearer(request.headers)
    if secret is not None and scope != "admin":
        record = await rt.key_cache.lookup(secret)
        if record is not None and scope in record.scopes:
            return
    await require(rt, request, f"{scope}.read" if scope != "admin" else "admin")


def admin(handler: Any, action: str = "admin") -> Any:
    """Wrap an admin handler: authenticate, authorise ``action``, render errors.

    Without an ``action`` only the admin role passes (fail closed).
    """

    async def wrapped(request: Request) -> Response:
        rt: Runtime = request.app.state.runtime
        request_id = new_request_id()
        try:
            await require(rt, request, action)
            response: Response = await handler(rt, request)
        except PilothouseError as exc:
            return error_response(exc, request_id)
        except Exception as exc:
            return error_response(exc, request_id)
        response.headers["x-request-id"] = request_id
        return response

    wrapped.action = action  # type: ignore[attr-defined]
    return wrapped


async def _json_body(rt: Runtime, request: Request) -> Any:
    raw = await read_body(request, rt.settings.server.max_body_bytes)
    return validate.parse_json(raw, JsonLimits.of(rt.settings.server))


def _admin_keys_need_admin(principal: Principal, *, target_role: str | None, new_role: Any) -> None:
    if not may_manage_key(principal.role, target_role=target_role, new_role=new_role):
        raise PermissionDeniedError(
            "only the admin role may manage keys that carry an admin role",
            code="forbidden_for_role",
        )


async def create_key(rt: Runtime, request: Request) -> Response:
    spec = await _json_body(rt, request)
    if isinstance(spec, dict):
        _admin_keys_need_admin(principal_of(request), target_role=None, new_role=spec.get("role"))
    record, secret = await rt.keys.create(spec, actor=principal_of(request).name)
    return json_response({**record.public(), "key": secret}, status=201)


async def list_keys(rt: Runtime, request: Request) -> Response:
    include = request.query_params.get("include_revoked") in ("1", "true", "yes")
    records = await rt.keys.list_all(include_revoked=include)
    await rt.ledger.flush()
    spend = await spend_by_key(rt.engine)
    data = [{**r.public(), **await _spend_fields(rt, r, spend.get(r.id))} for r in records]
    return json_response({"data": data})


async def _spend_fields(rt: Runtime, record: KeyRecord, spend: KeySpend | None) -> dict[str, Any]:
    """Spend in the key's current budget period, what is left of the budget, and last use."""
    spend = spend or KeySpend()
    out: dict[str, Any] = {
        "spend_usd": pico_to_str(spend.in_period(record.budget_period)),
        "budget_left_usd": None,
        "last_used_at": spend.last_used_at.isoformat() if spend.last_used_at else None,
    }
    if record.budget_pico is not None:
        spent = await rt.budgets.spent(record.id, period_key(record.budget_period))
        out["budget_left_usd"] = pico_to_str(max(0, record.budget_pico - spent))
    return out


async def update_key(rt: Runtime, request: Request) -> Response:
    key_id = request.path_params["key_id"]
    patch = await _json_body(rt, request)
    target = await rt.keys.get(key_id)
    new_role = patch.get("role") if isinstance(patch, dict) else None
    _admin_keys_need_admin(principal_of(request), target_role=target.admin_role, new_role=new_role)
    record = await rt.keys.update(key_id, patch, actor=principal_of(request).name)
    await rt.key_changed(key_id)
    return json_response(record.public())


async def rotate_key(rt: Runtime, request: Request) -> Response:
    key_id = request.path_params["key_id"]
    raw = await read_body(request, rt.settings.server.max_body_bytes)
    body = validate.parse_json(raw, rt.settings.server.max_body_bytes) if raw.strip() else {}
    unknown = sorted(set(body) - {"grace_s"})
    if unknown:
        raise InvalidRequestError(f"unknown field(s): {', '.join(unknown)}", param=unknown[0])
    grace = body.get("grace_s", DEFAULT_ROTATION_GRACE_S)
    target = await rt.keys.get(key_id)
    _admin_keys_need_admin(principal_of(request), target_role=target.admin_role, new_role=None)
    record, secret = await rt.keys.rotate(key_id, grace_s=grace, actor=principal_of(request).name)
    await rt.key_changed(key_id)
    body = {**record.public(), "key": secret, "grace_s": grace}
    if grace:
        body["previous_valid_until"] = (datetime.now(UTC) + timedelta(seconds=grace)).isoformat()
    return json_response(body, status=201)


async def revoke_key(rt: Runtime, request: Request) -> Response:
    key_id = request.path_params["key_id"]
    target = await rt.keys.get(key_id)
    _admin_keys_need_admin(principal_of(request), target_role=target.admin_role, new_role=None)
    record = await rt.keys.revoke(key_id, actor=principal_of(request).name)
    await rt.revoke(key_id)
    return json_response(record.public())


async def usage(rt: Runtime, request: Request) -> Response:
    q = request.query_params
    await rt.ledger.flush()
    summary = await usage_summary(
        rt.engine,
        key_id=q.get("key_id") or None,
        team_id=q.get("team_id") or None,
        user_id=q.get("user_id") or None,
        model=q.get("model") or None,
        since=parse_time(q.get("since"), "since"),
        until=parse_time(q.get("until"), "until"),
        group_by=q.get("group_by") or None,
    )
    return json_response(summary)


async def reload_config(rt: Runtime, request: Request) -> Response:
    source = rt.settings.source
    if source.startswith("<"):
        return json_response({"reloaded": False, "reason": "running on the embedded default"})
    settings = rt.reread()
    await rt.reload(settings, actor=principal_of(request).name)
    return json_response({"reloaded": True, "source": source, "models": sorted(settings.models)})


def routes() -> list[Route]:
    return [
        Route("/admin/keys", admin(create_key, "keys.write"), methods=["POST"]),
        Route("/admin/keys", admin(list_keys, "keys.read"), methods=["GET"]),
        Route("/admin/keys/{key_id}", admin(revoke_key, "keys.write"), methods=["DELETE"]),
        Route("/admin/keys/{key_id}", admin(update_key, "keys.write"), methods=["PATCH"]),
        Route("/admin/keys/{key_id}/rotate", admin(rotate_key, "keys.write"), methods=["POST"]),
        Route("/admin/usage", admin(usage, "usage.read"), methods=["GET"]),
        Route("/admin/reload", admin(reload_config, "config.reload"), methods=["POST"]),
    ]
