"""``GET /openapi.json``: the gateway's HTTP contract, built from one registry.

Every route the app serves must have an :class:`Operation` in
``gateway/openapi_ops.py`` (or in a module listed in its ``SOURCES``), and every
documented operation must exist: ``tests/unit/test_openapi.py`` compares the
two, so a new route fails the suite until it is documented. Adding one is a
single ``Operation(...)`` entry next to its area's others — schemas are plain
JSON Schema dicts, errors are ``errors(401, 403, ...)``.

The document needs a key (any valid virtual key, or the admin key), like every
endpoint but the health probes: it lists admin routes and model aliases.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pilothouse import __version__
from pilothouse.errors import AuthenticationError
from pilothouse.gateway import admission
from pilothouse.gateway.http_errors import error_response
from pilothouse.gateway.pipeline import new_request_id
from pilothouse.gateway.routes_openai import json_response

JSON = "application/json"
_STATUS_TEXT = {
    400: "Invalid request (the error names the parameter)",
    401: "Missing or invalid key",
    403: "The key lacks the scope or model",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict with the current state",
    413: "Body larger than server.max_body_bytes",
    422: "Semantically invalid request",
    429: "Rate limit or budget exceeded (Retry-After)",
    499: "The client closed the connection",
    502: "Every upstream target failed",
    503: "Overloaded, draining, or a dependency is down (Retry-After)",
    504: "Upstream deadline exceeded",
}


@dataclass(frozen=True)
class Operation:
    """One documented route: method, OpenAPI path and the shapes that cross the wire."""

    method: str
    path: str
    summary: str
    tag: str
    auth: str = "key"  # "none" | "key" (inference) | "admin" | "metrics" | "console"
    body: Mapping[str, Any] | None = None  # JSON schema of a JSON request body
    body_media: str = JSON
    body_required: bool = True
    params: Sequence[Mapping[str, Any]] = ()
    ok: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)  # status → content
    errors: Sequence[int] = ()
    error_text: Mapping[int, str] = field(default_factory=dict)  # per-route status descriptions
    error_schema: str = "Error"  # a components/schemas name (Anthropic routes differ)
    error_media: str | tuple[str, ...] = JSON  # console pages answer errors in HTML


def content(schema: Mapping[str, Any], media: str = JSON) -> dict[str, Any]:
    return {media: {"schema": dict(schema)}}


def query(name: str, description: str, schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": dict(schema or {"type": "string"}),
    }


def path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def errors(*statuses: int) -> tuple[int, ...]:
    return statuses


_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "none": [],
    "key": [{"bearer": []}],
    "admin": [{"bearer": []}],
    "metrics": [{"bearer": []}],
    "console": [{"console_session": []}, {}],
}


def _operation(op: Operation) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, body in op.ok.items():
        described: dict[str, Any] = {"description": "Redirect" if status == 303 else "Success"}
        responses[str(status)] = described | ({"content": dict(body)} if body else {})
    medias = (op.error_media,) if isinstance(op.error_media, str) else op.error_media
    error_content: dict[str, Any] = {}
    for media in medias:
        schema = {"$ref": f"#/components/schemas/{op.error_schema}"}
        error_content |= content(schema if media == JSON else {"type": "string"}, media)
    statuses = list(op.errors)
    if op.auth in ("key", "admin", "metrics") and 429 not in statuses:
        statuses.append(429)  # every key-taking route throttles failed authentication
    for status in statuses:
        responses[str(status)] = {
            "description": op.error_text.get(status) or _STATUS_TEXT.get(status, "Error"),
            "content": error_content,
        }
    doc: dict[str, Any] = {
        "operationId": re.sub(r"\W+", "_", f"{op.method}_{op.path}").strip("_").lower(),
        "summary": op.summary,
        "tags": [op.tag],
        "security": _SECURITY[op.auth],
        "responses": responses,
    }
    if op.params:
        doc["parameters"] = [dict(p) for p in op.params]
    if op.body is not None:
        doc["requestBody"] = {
            "required": op.body_required,
            "content": content(op.body, op.body_media),
        }
    return doc


def openapi_document(operations: Iterable[Operation], models: Sequence[str] = ()) -> dict[str, Any]:
    """The document; ``models`` (the configured aliases) become the ``ModelAlias`` enum."""
    from pilothouse.gateway.openapi_ops import COMPONENTS

    schemas = dict(COMPONENTS)
    if models:
        schemas["ModelAlias"] = {"type": "string", "enum": sorted(models)}
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pilothouse gateway",
            "version": __version__,
            "description": "OpenAI-compatible gateway, admin, telemetry and console routes. "
            "Errors are OpenAI-shaped: {error: {message, type, param, code}}.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a pilothouse key"},
                "console_session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "pilothouse_session",
                },
            },
            "schemas": schemas,
        },
    }


def starlette_path(path: str) -> str:
    """``/console/{rest:path}`` → ``/console/{rest}`` (OpenAPI has no converters)."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def app_operations(routes: Iterable[BaseRoute]) -> set[tuple[str, str]]:
    """(METHOD, OpenAPI path) for every route the app serves (HEAD is implied by GET)."""
    found: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Route):
            for method in route.methods or ():
                if method != "HEAD":
                    found.add((method, starlette_path(route.path)))
    return found


async def _allowed(request: Request) -> None:
    rt = request.app.state.runtime
    secret = admission.bearer(request.headers)
    if secret is None:
        raise AuthenticationError(
            "missing API key: send `Authorization: Bearer <key>`", code="missing_api_key"
        )
    await admission.check_secret(
        rt,
        secret,
        admission.source_of(request),
        message="invalid or revoked API key",
        bootstrap=True,
    )


async def openapi_json(request: Request) -> Response:
    try:
        await _allowed(request)
    except Exception as exc:
        return error_response(exc, new_request_id())
    from pilothouse.gateway.openapi_ops import all_operations

    rt = request.app.state.runtime
    return json_response(openapi_document(all_operations(), models=list(rt.settings.models)))


def routes() -> list[Route]:
    return [Route("/openapi.json", openapi_json, methods=["GET"])]
