"""``/v1/rag/{collection}/...``: documents in, search out, for inference keys.

Each route is one gateway request (ledger row, trace, limits): the embedding
calls it makes go through the router under that request, and their tokens
are priced on it. The caller's ACL groups are its key's ``metadata.groups``;
keys with the ``admin`` role, scope or group read everything; a signed
principal header narrows them per end user (``rag/principal.py``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.errors import InvalidRequestError, NotFoundError
from pilothouse.gateway import admission, citation_stage, validate
from pilothouse.gateway.context import RequestContext
from pilothouse.gateway.pipeline import model_headers, price_usage
from pilothouse.gateway.routes_openai import json_response, model_endpoint, read_body
from pilothouse.gateway.runtime import Runtime
from pilothouse.inputs import JsonLimits
from pilothouse.providers.base import Usage
from pilothouse.rag import principal
from pilothouse.rag import trace as rag_trace
from pilothouse.rag.acl import caller_groups
from pilothouse.rag.bundle import store_of
from pilothouse.rag.service import Embed, IncomingDocument, RagService
from pilothouse.rag.store import Hit, parse_filter


def hit_json(hit: Hit) -> dict[str, Any]:
    return {
        "document_id": hit.document_id,
        "chunk_id": hit.chunk_id,
        "score": hit.score,
        "text": hit.text,
        "title": hit.title,
        "source": hit.source,
        "metadata": hit.metadata,
    }


async def _service(rt: Runtime, ctx: RequestContext, request: Request) -> tuple[RagService, Any]:
    ctx.key = await admission.authenticate(rt, request)
    ctx.principal = principal.parse(rt.settings.rag.principal, request.headers)
    collection = request.path_params["collection"]
    coll = rt.settings.rag.collections.get(collection)
    if coll is None:
        raise NotFoundError(f"unknown RAG collection {collection!r}")
    ctx.alias = coll.embedder
    admission.authorize(ctx.key, coll.embedder)
    embed = gateway_embed(rt, ctx, coll.embedder)
    return RagService(rt.settings, store_of(rt), embed), ctx.key


def gateway_embed(rt: Runtime, ctx: RequestContext, embedder: str) -> Embed:
    """Embeddings for one gateway request ``ctx``: admitted once, guarded, routed and priced
    on it (the console's search playground uses it too)."""
    ctx.alias = embedder
    route = rt.router.route(embedder)
    ctx.deadline = rt.router.deadline_for(route)
    admitted = False
    total = Usage()

    async def embed(alias: str, texts: list[str]) -> np.ndarray:
        nonlocal admitted
        body = {"model": alias, "input": texts}
        if not admitted:
            await admission.admit(rt, ctx, body, route)
            ctx.admitted_at = time.perf_counter()
            admitted = True
        # The embedder alias's guard policy applies here as on /v1/embeddings (the CLI and
        # the workers embed through that route): no path reaches the model unguarded.
        body = await rt.guards.check_embeddings_input(ctx, body)
        result = await rt.router.embed(ctx, body)
        total.input_tokens += result.usage.input_tokens
        price_usage(rt, ctx, total)
        return np.asarray([d["embedding"] for d in result.body["data"]], dtype=np.float32)

    return embed


async def _json(rt: Runtime, request: Request) -> dict[str, Any]:
    raw = await read_body(request, rt.settings.server.max_body_bytes)
    body = validate.parse_json(raw, JsonLimits.of(rt.settings.server))
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object")
    return body


def _documents(body: dict[str, Any]) -> list[IncomingDocument]:
    docs = body.get("documents")
    if not isinstance(docs, list) or not docs:
        raise InvalidRequestError("`documents` must be a non-empty array", param="documents")
    out = []
    for i, d in enumerate(docs):
        where = f"documents[{i}]"
        if not isinstance(d, dict):
            raise InvalidRequestError(f"{where} must be an object", param=where)
        if not isinstance(d.get("id"), str) or not d["id"]:
            raise InvalidRequestError(f"{where}.id must be a non-empty string", param=where + ".id")
        if not isinstance(d.get("text"), str):
            raise InvalidRequestError(f"{where}.text must be a string", param=where + ".text")
        acl = d.get("acl") or []
        if not isinstance(acl, list) or not all(isinstance(g, str) for g in acl):
            raise InvalidRequestError(
                f"{where}.acl must be an array of strings", param=where + ".acl"
            )
        meta = d.get("metadata") or {}
        if not isinstance(meta, dict):
            raise InvalidRequestError(
                f"{where}.metadata must be an object", param=where + ".metadata"
            )
        for name in ("title", "source"):
            if d.get(name) is not None and not isinstance(d[name], str):
                raise InvalidRequestError(
                    f"{where}.{name} must be a string", param=f"{where}.{name}"
                )
        out.append(IncomingDocument(d["id"], d["text"], d.get("title"), d.get("source"), acl, meta))
    return out


async def post_documents(rt: Runtime, ctx: RequestContext, request: Request) -> Response:
    service, key = await _service(rt, ctx, request)
    if caller_groups(key) is not None and "rag:write" not in key.scopes:
        writer = (key.metadata or {}).get("rag_write")
        if writer is False:
            raise InvalidRequestError("this key may not write documents")
    body = await _json(rt, request)
    collection = request.path_params["collection"]
    results = await service.ingest(collection, _documents(body))
    # Answers cached from the old text of a changed document go with it.
    changed = [doc_id for doc_id, status in results.items() if status == "updated"]
    await citation_stage.purge(rt, collection, changed)
    data = [{"id": doc_id, "status": status} for doc_id, status in results.items()]
    return json_response({"object": "list", "data": data}, model_headers(ctx))


async def get_document(rt: Runtime, ctx: RequestContext, request: Request) -> Response:
    service, key = await _service(rt, ctx, request)
    collection, doc_id = request.path_params["collection"], request.path_params["doc_id"]
    doc = await service.store.document(collection, doc_id)
    groups = principal.effective_groups(key, ctx.principal)
    if doc is None or (groups is not None and not set(doc.acl) & {*groups, "*"}):
        raise NotFoundError(f"no document {doc_id!r} in collection {collection!r}")
    return json_response(
        {
            "id": doc.id,
            "title": doc.title,
            "source": doc.source,
            "acl": doc.acl,
            "metadata": doc.metadata,
            "content_hash": doc.content_hash,
            "chunks": doc.chunks,
            "bytes": doc.bytes,
            "embedder": doc.embedder,
            "embedder_version": doc.embedder_version,
            "indexed_at": doc.indexed_at,
        },
        model_headers(ctx),
    )


async def delete_document(rt: Runtime, ctx: RequestContext, request: Request) -> Response:
    service, key = await _service(rt, ctx, request)
    collection, doc_id = request.path_params["collection"], request.path_params["doc_id"]
    doc = await service.store.document(collection, doc_id)
    groups = principal.effective_groups(key, ctx.principal)
    if doc is None or (groups is not None and not set(doc.acl) & {*groups, "*"}):
        raise NotFoundError(f"no document {doc_id!r} in collection {collection!r}")
    await service.delete(collection, doc_id)
    purged = await citation_stage.purge(rt, collection, [doc_id])
    return json_response(
        {"id": doc_id, "deleted": True, "cached_answers_deleted": purged}, model_headers(ctx)
    )


async def search(rt: Runtime, ctx: RequestContext, request: Request) -> Response:
    service, key = await _service(rt, ctx, request)
    body = await _json(rt, request)
    collection = request.path_params["collection"]
    result = await service.search(
        collection,
        body.get("query"),  # type: ignore[arg-type]
        k=body.get("k"),
        mode=body.get("mode"),
        groups=principal.effective_groups(key, ctx.principal),
        where=parse_filter(body.get("filter")),
    )
    rag_trace.record(ctx, collection, body["query"], result, source="search")
    rt.telemetry.metrics.observe_rag_search(
        collection=collection, mode=result.mode, underfilled=result.underfilled
    )
    ctx.response_body = {"retrieval": {"documents": [h.document_id for h in result.hits]}}
    return json_response(
        {
            "object": "list",
            "mode": result.mode,
            "underfilled": result.underfilled,
            "data": [hit_json(h) for h in result.hits],
        },
        model_headers(ctx),
    )


def routes() -> list[Route]:
    base = "/v1/rag/{collection}"
    return [
        Route(base + "/documents", model_endpoint("rag", post_documents), methods=["POST"]),
        Route(
            base + "/documents/{doc_id:path}", model_endpoint("rag", get_document), methods=["GET"]
        ),
        Route(
            base + "/documents/{doc_id:path}",
            model_endpoint("rag", delete_document),
            methods=["DELETE"],
        ),
        Route(base + "/search", model_endpoint("rag", search), methods=["POST"]),
    ]
