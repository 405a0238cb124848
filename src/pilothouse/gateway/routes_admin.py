"""Admin API: keys, usage, config reload. Admin key (or a key with the admin scope) only."""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.config.load import load_settings
from pilothouse.costs.usage_query import parse_time, usage_summary
from pilothouse.errors import AuthenticationError, PermissionDeniedError, PilothouseError
from pilothouse.gateway import admission, validate
from pilothouse.gateway.http_errors import error_response
from pilothouse.gateway.pipeline import new_request_id
from pilothouse.gateway.routes_openai import json_response, read_body
from pilothouse.gateway.runtime import Runtime
from pilothouse.limits.keys import KeyRecord


async def admin_principal(
    rt: Runtime, secret: str | None, scope: str = "admin"
) -> KeyRecord | None:
    """Who is calling: ``None`` for the config admin key, else the virtual key that passed.

    The config admin key passes every check; virtual keys need ``scope`` (or admin).
    """
    if secret is None:
        raise AuthenticationError("missing admin key: send `Authorization: Bearer <admin key>`")
    admin = rt.settings.server.admin_key
    if admin is not None and hmac.compare_digest(secret.encode(), admin.get().encode()):
        return None
    record = await rt.key_cache.lookup(secret)
    if record is None:
        raise AuthenticationError("invalid admin key")
    if scope not in record.scopes and "admin" not in record.scopes:
        raise PermissionDeniedError(
            f"this key does not have the {scope} scope", code=f"not_{scope}"
        )
    return record


async def require_scope(rt: Runtime, request: Request, scope: str = "admin") -> None:
    await admin_principal(rt, admission.bearer(request.headers), scope)


async def require_admin(rt: Runtime, request: Request) -> None:
    await require_scope(rt, request, "admin")


def admin(handler: Any) -> Any:
    async def wrapped(request: Request) -> Response:
        rt: Runtime = request.app.state.runtime
        request_id = new_request_id()
        try:
            await require_admin(rt, request)
            response: Response = await handler(rt, request)
        except PilothouseError as exc:
            return error_response(exc, request_id)
        except Exception as exc:
            return error_response(exc, request_id)
        response.headers["x-request-id"] = request_id
        return response

    return wrapped


async def _json_body(rt: Runtime, request: Request) -> Any:
    raw = await read_body(request, rt.settings.server.max_body_bytes)
    return validate.parse_json(raw, rt.settings.server.max_body_bytes)


async def create_key(rt: Runtime, request: Request) -> Response:
    spec = await _json_body(rt, request)
    record, secret = await rt.keys.create(spec)
    return json_response({**record.public(), "key": secret}, status=201)


async def list_keys(rt: Runtime, request: Request) -> Response:
    include = request.query_params.get("include_revoked") in ("1", "true", "yes")
    records = await rt.keys.list_all(include_revoked=include)
    return json_response({"data": [r.public() for r in records]})


async def revoke_key(rt: Runtime, request: Request) -> Response:
    key_id = request.path_params["key_id"]
    record = await rt.keys.revoke(key_id)
    await rt.revoke(key_id)
    return json_response(record.public())


async def usage(rt: Runtime, request: Request) -> Response:
    q = request.query_params
    await rt.ledger.flush()
    summary = await usage_summary(
        rt.engine,
        key_id=q.get("key_id") or None,
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
    settings = load_settings(source)
    await rt.reload(settings)
    return json_response({"reloaded": True, "source": source, "models": sorted(settings.models)})


def routes() -> list[Route]:
    return [
        Route("/admin/keys", admin(create_key), methods=["POST"]),
        Route("/admin/keys", admin(list_keys), methods=["GET"]),
        Route("/admin/keys/{key_id}", admin(revoke_key), methods=["DELETE"]),
        Route("/admin/usage", admin(usage), methods=["GET"]),
        Route("/admin/reload", admin(reload_config), methods=["POST"]),
    ]
