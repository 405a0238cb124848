"""Admin API for the prompt registry: push, read, label (with gates), render, approve."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.errors import InvalidRequestError
from pilothouse.gateway import validate
from pilothouse.gateway.routes_admin import admin, principal_of
from pilothouse.gateway.routes_openai import json_response, read_body
from pilothouse.gateway.runtime import Runtime
from pilothouse.inputs import JsonLimits
from pilothouse.releases.promote import promote
from pilothouse.releases.render import render_messages


async def _body(rt: Runtime, request: Request) -> dict[str, Any]:
    raw = await read_body(request, rt.settings.server.max_body_bytes)
    body = validate.parse_json(raw, JsonLimits.of(rt.settings.server)) if raw else {}
    if not isinstance(body, dict):
        raise InvalidRequestError("request body must be a JSON object")
    return body


def _reason(body: dict[str, Any]) -> str | None:
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise InvalidRequestError("`reason` must be a string", param="reason")
    return reason


def _version_number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise InvalidRequestError("`version` must be a version number", param="version")
    return int(value)


async def push(rt: Runtime, request: Request) -> Response:
    body = await _body(rt, request)
    reason = _reason(body)
    bundle = {k: v for k, v in body.items() if k != "reason"}
    version, created = await rt.prompts.push(
        bundle, actor=principal_of(request).name, reason=reason
    )
    out = {"name": version.name, "version": version.version, "hash": version.hash}
    return json_response({**out, "created": created}, status=201 if created else 200)


async def list_prompts(rt: Runtime, request: Request) -> Response:
    return json_response({"data": await rt.prompts.list_prompts()})


async def describe(rt: Runtime, request: Request) -> Response:
    return json_response(await rt.prompts.describe(request.path_params["name"]))


async def show_version(rt: Runtime, request: Request) -> Response:
    p = request.path_params
    version, label = await rt.prompts.resolve(p["name"], p["ref"])
    return json_response({**version.public(), "label": label})


async def card(rt: Runtime, request: Request) -> Response:
    p = request.path_params
    version, _label = await rt.prompts.resolve(p["name"], p["ref"])
    content = version.content
    return json_response(
        {
            "name": version.name,
            "version": version.version,
            "hash": version.hash,
            "description": content["description"],
            "model": content["model"],
            "card": content["card"],
            "evals": content["evals"],
            "evidence": await rt.prompts.evidence(version.name, version.version),
        }
    )


async def move_label(rt: Runtime, request: Request) -> Response:
    p = request.path_params
    body = await _body(rt, request)
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise InvalidRequestError("`force` must be true or false", param="force")
    moved = await promote(
        rt.prompts,
        rt.settings.releases,
        p["name"],
        p["label"],
        _version_number(body.get("version")),
        actor=principal_of(request).name,
        reason=_reason(body),
        force=force,
    )
    await rt.label_moved(p["name"], p["label"])
    return json_response(moved)


async def delete_label(rt: Runtime, request: Request) -> Response:
    p = request.path_params
    reason = request.query_params.get("reason")
    previous = await rt.prompts.delete_label(
        p["name"], p["label"], actor=principal_of(request).name, reason=reason
    )
    await rt.label_moved(p["name"], p["label"])
    return json_response({"label": p["label"], "version": None, "previous": previous})


async def label_history(rt: Runtime, request: Request) -> Response:
    p = request.path_params
    return json_response({"data": await rt.prompts.history(p["name"], p["label"])})


async def render(rt: Runtime, request: Request) -> Response:
    body = await _body(rt, request)
    ref = body.get("ref")
    if not isinstance(ref, str | int) or isinstance(ref, bool) or str(ref) == "":
        raise InvalidRequestError("`ref` must be a version number or label", param="ref")
    version, label = await rt.prompts.resolve(request.path_params["name"], str(ref))
    messages = render_messages(version.content, body.get("variables"))
    return json_response(
        {
            "name": version.name,
            "version": version.version,
            "hash": version.hash,
            "label": label,
            "model": version.content["model"],
            "messages": messages,
            "params": version.content["params"],
        }
    )


async def approve(rt: Runtime, request: Request) -> Response:
    p = request.path_params
    body = await _body(rt, request)
    label = body.get("label")
    if not isinstance(label, str):
        raise InvalidRequestError("`label` is required", param="label")
    out = await rt.prompts.approve(
        p["name"],
        _version_number(p["version"]),
        label,
        actor=principal_of(request).name,
        reason=_reason(body),
    )
    return json_response(out, status=201)


def routes() -> list[Route]:
    base = "/admin/prompts"
    label = base + "/{name}/labels/{label}"
    return [
        Route(base, admin(push, "prompts.write"), methods=["POST"]),
        Route(base, admin(list_prompts, "prompts.read"), methods=["GET"]),
        Route(base + "/{name}", admin(describe, "prompts.read"), methods=["GET"]),
        Route(
            base + "/{name}/versions/{ref}", admin(show_version, "prompts.read"), methods=["GET"]
        ),
        Route(base + "/{name}/versions/{ref}/card", admin(card, "prompts.read"), methods=["GET"]),
        Route(
            base + "/{name}/versions/{version}/approve",
            admin(approve, "prompts.approve"),
            methods=["POST"],
        ),
        Route(label, admin(move_label, "labels.write"), methods=["PUT"]),
        Route(label, admin(delete_label, "labels.write"), methods=["DELETE"]),
        Route(label + "/history", admin(label_history, "prompts.read"), methods=["GET"]),
        Route(base + "/{name}/render", admin(render, "prompts.read"), methods=["POST"]),
    ]
