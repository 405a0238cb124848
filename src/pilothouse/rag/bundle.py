"""Retrieval for prompt bundles on the gateway: search as the caller, then trace it.

The query's embedding runs as its own ``embeddings`` request (a child of the
chat request: same key, its own usage row and trace, linked by
``metadata.rag_for``), so it is guarded, costed and counted like any other
call without its attempts or tokens being booked on the chat. The search
applies the caller's ACL groups (narrowed by a signed principal header, parsed
once in ``routes_openai._prepare``) inside the index query, exactly as
``POST /v1/rag/{collection}/search`` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pilothouse.errors import NotFoundError
from pilothouse.gateway import admission
from pilothouse.gateway.context import RequestContext
from pilothouse.gateway.runtime import Runtime
from pilothouse.rag import trace as rag_trace
from pilothouse.rag.principal import effective_groups
from pilothouse.rag.service import RagService
from pilothouse.rag.store import Hit, RagStore, open_store
from pilothouse.telemetry.tracecontext import new_trace_id


def store_of(rt: Runtime) -> RagStore:
    """The runtime's RAG store, opened on first use (shared by routes and bundles)."""
    if rt.rag_store is None:
        rt.rag_store = open_store(rt.settings.rag.store.url)
    store: RagStore = rt.rag_store
    return store


async def _embed(rt: Runtime, parent: RequestContext, alias: str, texts: list[str]) -> np.ndarray:
    from pilothouse.gateway import pipeline

    child = RequestContext(request_id=pipeline.new_request_id(), endpoint="embeddings")
    child.key, child.alias = parent.key, alias
    child.trace_id = new_trace_id()  # its own trace: the store holds one per trace id
    child.metadata = {"rag_for": parent.request_id}
    child.deadline = rt.router.deadline_for(rt.router.route(alias))
    try:
        body = await rt.guards.check_embeddings_input(child, {"model": alias, "input": texts})
        result = await pipeline.embeddings(rt, child, body)
    except BaseException as exc:
        pipeline.fail(child, exc)
        raise
    finally:
        pipeline.finish(rt, child)
    return np.asarray([d["embedding"] for d in result["data"]], dtype=np.float32)


def retriever(rt: Runtime) -> Any:
    """The :data:`pilothouse.releases.retrieval.Retriever` for this runtime."""

    async def retrieve(ctx: RequestContext, spec: dict[str, Any], query: str) -> list[Hit]:
        collection = spec["collection"]
        coll = rt.settings.rag.collections.get(collection)
        if coll is None:
            known = ", ".join(sorted(rt.settings.rag.collections)) or "none configured"
            raise NotFoundError(
                f"the prompt bundle retrieves from RAG collection {collection!r}, which this "
                f"gateway does not have (collections: {known})",
                param="retrieval.collection",
            )
        assert ctx.key is not None
        admission.authorize(ctx.key, coll.embedder)

        async def embed(alias: str, texts: list[str]) -> np.ndarray:
            return await _embed(rt, ctx, alias, texts)

        groups = effective_groups(ctx.key, ctx.principal)
        service = RagService(rt.settings, store_of(rt), embed)
        result = await service.search(
            collection, query, k=spec.get("k"), mode=spec.get("mode"), groups=groups
        )
        rag_trace.record(ctx, collection, query, result, source="bundle")
        rt.telemetry.metrics.observe_rag_search(
            collection=collection, mode=result.mode, underfilled=result.underfilled
        )
        return result.hits

    return retrieve
