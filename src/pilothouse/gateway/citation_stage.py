"""Cached answers and the RAG documents they cite (see ``cache/citations.py``).

``remember`` runs where an answer is stored in the exact or semantic cache;
``purge`` runs wherever a document is deleted on the gateway (the documents
route, privacy erasure), so an answer built from a deleted document is never
served again.
"""

from __future__ import annotations

from typing import Any

from pilothouse.cache import citations
from pilothouse.gateway.context import RequestContext
from pilothouse.gateway.runtime import Runtime


def bundle_cites(ctx: RequestContext) -> list[citations.Citation]:
    """The documents a prompt bundle's retrieval put in this request's prompt."""
    return sorted(
        {(r["collection"], h["id"]) for r in ctx.retrievals if r["source"] == "bundle"
         for h in r["hits"]}
    )  # fmt: skip


async def remember(
    rt: Runtime,
    ctx: RequestContext,
    request: dict[str, Any],
    exact_key: str | None,
    semantic: tuple[str, str] | None,
    ttl_s: float,
) -> None:
    cites = sorted({*bundle_cites(ctx), *citations.from_request(request)})
    refs = [citations.exact_ref(exact_key)] if exact_key is not None else []
    if semantic is not None:
        refs.append(citations.semantic_ref(*semantic))
    if cites and refs:
        await rt.citations.add(cites, refs, ttl_s)


async def purge(rt: Runtime, collection: str, doc_ids: list[str]) -> int:
    """Delete the cached answers citing any of ``doc_ids``; returns how many."""
    index = rt.semantic_cache.index if rt.semantic_cache is not None else None
    gone = 0
    for doc_id in doc_ids:
        gone += await citations.purge(rt.citations, rt.cache, index, collection, doc_id)
    return gone


class DeletionLog:
    """A RAG store that notes what it deleted (privacy erasure deletes through the store)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.deleted: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def delete(self, collection: str, doc_id: str) -> bool:
        gone = bool(await self.store.delete(collection, doc_id))
        if gone:
            self.deleted.append((collection, doc_id))
        return gone
