"""``POST /admin/privacy/erase``: erasure run inside the gateway, so it also reaches the
gateway's own memory (the in-process response cache and pseudonym mappings) that the
``pilothouse privacy erase`` CLI cannot see from another process."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.errors import InvalidRequestError, NotFoundError
from pilothouse.gateway import validate
from pilothouse.gateway.routes_admin import admin, principal_of
from pilothouse.gateway.routes_openai import json_response, read_body
from pilothouse.gateway.runtime import Runtime
from pilothouse.inputs import JsonLimits

SUBJECTS = ("user", "key", "request")


def _subject(body: Any) -> tuple[str, str]:
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object")
    unknown = sorted(set(body) - set(SUBJECTS))
    if unknown:
        raise InvalidRequestError(f"unknown field(s): {', '.join(unknown)}", param=unknown[0])
    given = [(k, body[k]) for k in SUBJECTS if body.get(k) is not None]
    if len(given) != 1:
        raise InvalidRequestError("give exactly one of `user`, `key` or `request`")
    kind, ident = given[0]
    if not isinstance(ident, str) or not ident.strip():
        raise InvalidRequestError(f"`{kind}` must be a non-empty string", param=kind)
    return kind, ident


def _rag(rt: Runtime, request: Request) -> tuple[Any, list[str]] | None:
    collections = list(rt.settings.rag.collections)
    if not collections:
        return None
    from pilothouse.gateway.citation_stage import DeletionLog
    from pilothouse.rag.bundle import store_of

    return DeletionLog(store_of(rt)), collections


async def erase_subject(rt: Runtime, request: Request) -> Response:
    from pilothouse.guard.erase import erase

    raw = await read_body(request, rt.settings.server.max_body_bytes)
    kind, ident = _subject(validate.parse_json(raw, JsonLimits.of(rt.settings.server)))
    # What is still queued for the store (usage rows, traces) is the subject's too.
    await rt.ledger.flush()
    await rt.telemetry.traces.flush()
    memory = [s for s in (rt.cache, rt.guards.mappings) if hasattr(s, "erase_values")]
    stored = rt.metadata_privacy.apply({"user": ident}) if kind == "user" else None
    rag = _rag(rt, request)
    receipt = await erase(
        rt.engine, **{kind: ident}, redis=rt.redis, redis_prefix=rt.settings.redis.prefix,
        actor=principal_of(request).name, memory=memory, rag=rag,
        stored_as=stored["user"] if stored else None,
    )  # fmt: skip
    if rag is not None:  # answers cached from an erased document go with it
        from pilothouse.gateway.citation_stage import purge

        for collection, doc_id in rag[0].deleted:
            await purge(rt, collection, [doc_id])
    if not receipt.found:
        raise NotFoundError(f"nothing to erase: no data found for {kind} {ident!r}")
    return json_response(receipt.public())


def routes() -> list[Route]:
    return [
        Route("/admin/privacy/erase", admin(erase_subject, "privacy.erase"), methods=["POST"]),
    ]
