"""Collections as a service: ingest, delete, search and status over one :class:`RagStore`.

Embeddings always come from a gateway alias (``embed``), so they are costed,
limited and traced like any other call. A document version becomes visible
only when all of its chunks are embedded and written in one transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pilothouse.config.schema import Settings
from pilothouse.errors import ConfigError, InvalidRequestError, NotFoundError
from pilothouse.rag import rerank
from pilothouse.rag.chunking import chunk_text
from pilothouse.rag.config import CollectionConfig
from pilothouse.rag.store import (
    ChunkRecord,
    CollectionState,
    DocumentRecord,
    Hit,
    MetadataFilter,
    RagStore,
)

Embed = Callable[[str, list[str]], Awaitable[np.ndarray]]
PUBLIC = "*"
MODES = ("dense", "keyword", "hybrid")


@dataclass(slots=True)
class IncomingDocument:
    id: str
    text: str
    title: str | None = None
    source: str | None = None
    acl: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    source_mtime: float | None = None


@dataclass(slots=True)
class SearchResult:
    hits: list[Hit]
    mode: str
    k: int
    underfilled: bool
    latency_ms: float


def content_hash(doc: IncomingDocument) -> str:
    h = hashlib.sha256()
    for part in (doc.text, doc.title or "", doc.source or "", ",".join(sorted(doc.acl))):
        h.update(part.encode())
        h.update(b"\0")
    h.update(repr(sorted(doc.metadata.items())).encode())
    return h.hexdigest()


class RagService:
    def __init__(self, settings: Settings, store: RagStore, embed: Embed, batch: int = 32) -> None:
        self.settings = settings
        self.store = store
        self.embed = embed
        self.batch = batch
        self.concurrency = 2
        self.underfilled = 0

    def config(self, collection: str) -> CollectionConfig:
        coll = self.settings.rag.collections.get(collection)
        if coll is None:
            known = ", ".join(sorted(self.settings.rag.collections)) or "none configured"
            raise NotFoundError(f"unknown RAG collection {collection!r} (collections: {known})")
        return coll

    def embedder_id(self, collection: str) -> str:
        alias = self.config(collection).embedder
        model = self.settings.models[alias]
        target = model.targets[0]
        return f"{alias}={target.provider}/{target.model}"

    async def state(self, collection: str, *, for_write: bool) -> CollectionState | None:
        """The collection's embedder record; refuses a silent mix of two models."""
        state = await self.store.collection(collection)
        wanted = self.embedder_id(collection)
        if state is not None and state.embedder != wanted:
            raise ConfigError(
                f"collection {collection!r} is embedded with {state.embedder} "
                f"(version {state.embedder_version}) but is configured for {wanted}; "
                f"run `pilothouse rag reembed {collection}` first"
            )
        return state

    # ---- writes ---------------------------------------------------------------------

    async def _vectors(self, collection: str, texts: list[str]) -> np.ndarray:
        alias = self.config(collection).embedder
        batches = [texts[i : i + self.batch] for i in range(0, len(texts), self.batch)]
        gate = asyncio.Semaphore(self.concurrency)

        async def one(batch: list[str]) -> np.ndarray:
            async with gate:
                for attempt in range(3):
                    try:
                        return await self.embed(alias, batch)
                    except (InvalidRequestError, NotFoundError):
                        raise
                    except Exception:
                        if attempt == 2:
                            raise
                        await asyncio.sleep(0.2 * (attempt + 1))
                raise AssertionError("unreachable")  # pragma: no cover

        parts = await asyncio.gather(*(one(b) for b in batches))
        return np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)

    async def ingest(
        self,
        collection: str,
        docs: Sequence[IncomingDocument],
        on_chunks: Callable[[int], None] | None = None,
    ) -> dict[str, str]:
        """Index ``docs``; returns ``{id: created|updated|unchanged}``."""
        coll = self.config(collection)
        state = await self.state(collection, for_write=True)
        out: dict[str, str] = {}
        for doc in docs:
            if not doc.id or not isinstance(doc.text, str):
                raise InvalidRequestError("each document needs an `id` and a `text`")
            acl = sorted({g for g in doc.acl if g})
            if not acl and coll.acl.default == "allow":
                acl = [PUBLIC]
            doc.acl = acl
            digest = content_hash(doc)
            old = await self.store.document(collection, doc.id)
            if old is not None and old.content_hash == digest:
                out[doc.id] = "unchanged"
                continue
            texts = chunk_text(doc.text, coll.chunking) or [doc.title or doc.id]
            vectors = await self._vectors(collection, texts)
            if state is None:
                state = CollectionState(
                    collection, self.embedder_id(collection), 1, int(vectors.shape[1]), None
                )
                await self.store.set_collection(state)
            chunks = [ChunkRecord(f"{doc.id}#{i}", i, t, vectors[i]) for i, t in enumerate(texts)]
            record = DocumentRecord(
                doc.id,
                digest,
                doc.title,
                doc.source,
                acl,
                doc.metadata,
                state.embedder,
                state.embedder_version,
                time.time(),
                doc.source_mtime,
                len(doc.text.encode()),
                len(chunks),
            )
            await self.store.put(collection, record, chunks)
            if on_chunks is not None:
                on_chunks(len(chunks))
            out[doc.id] = "created" if old is None else "updated"
        return out

    async def delete(self, collection: str, doc_id: str) -> bool:
        self.config(collection)
        return await self.store.delete(collection, doc_id)

    async def reembed(self, collection: str) -> int:
        """Re-embed every chunk with the configured embedder; returns the chunk count."""
        self.config(collection)
        old = await self.store.collection(collection)
        docs = await self.store.documents(collection)
        wanted = self.embedder_id(collection)
        version = (old.embedder_version + 1) if old else 1
        staged: list[tuple[DocumentRecord, list[str]]] = []
        for doc in docs:
            texts = await self.chunk_texts(collection, doc.id)
            staged.append((doc, texts))
        all_texts = [t for _, ts in staged for t in ts]
        vectors = await self._vectors(collection, all_texts) if all_texts else None
        dims = int(vectors.shape[1]) if vectors is not None else (old.dimensions if old else 0)
        at = 0
        await self.store.set_collection(
            CollectionState(collection, wanted, version, dims, time.time())
        )
        for doc, texts in staged:
            assert vectors is not None
            chunks = [
                ChunkRecord(f"{doc.id}#{i}", i, t, vectors[at + i]) for i, t in enumerate(texts)
            ]
            at += len(texts)
            doc.embedder, doc.embedder_version = wanted, version
            await self.store.put(collection, doc, chunks)
        return len(all_texts)

    async def chunk_texts(self, collection: str, doc_id: str) -> list[str]:
        return await self.store.chunks_of(collection, doc_id)

    # ---- reads ----------------------------------------------------------------------

    async def search(
        self,
        collection: str,
        query: str,
        *,
        k: int | None = None,
        mode: str | None = None,
        groups: list[str] | None = None,
        where: MetadataFilter | None = None,
    ) -> SearchResult:
        coll = self.config(collection)
        k = coll.search.k if k is None else k
        mode = mode or coll.search.mode
        if mode not in MODES:
            raise InvalidRequestError(f"`mode` must be one of {', '.join(MODES)}", param="mode")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 1000:
            raise InvalidRequestError("`k` must be an integer between 1 and 1000", param="k")
        if not isinstance(query, str) or not query.strip():
            raise InvalidRequestError("`query` must be a non-empty string", param="query")
        started = time.perf_counter()
        if groups is not None:
            groups = sorted({*groups, PUBLIC})
        state = await self.state(collection, for_write=False)
        if state is None:
            return SearchResult([], mode, k, False, 0.0)
        reranking = coll.search.rerank is not False
        depth = k if mode != "hybrid" and not reranking else max(k * 4, 40)
        dense: list[Hit] = []
        keyword: list[Hit] = []
        if mode in ("dense", "hybrid"):
            vector = (await self.embed(coll.embedder, [query]))[0]
            dense = await self.store.dense(collection, vector, depth, groups, where)
        if mode in ("keyword", "hybrid"):
            keyword = await self.store.keyword(collection, query, depth, groups, where)
        if mode == "dense":
            hits = dense
        elif mode == "keyword":
            hits = keyword
        else:
            w = coll.search.weights
            hits = fuse([(dense, w.dense), (keyword, w.keyword)], coll.search.rrf_k)
        chosen = rerank.resolve(coll.search.rerank)
        if chosen is not None:
            hits = rerank.get(chosen).rerank(query, hits)
        hits = hits[:k]
        underfilled = len(hits) < k
        if underfilled:
            self.underfilled += 1
        return SearchResult(hits, mode, k, underfilled, (time.perf_counter() - started) * 1000)

    async def verify_deleted(self, collection: str, doc_id: str, probes: list[str]) -> list[str]:
        """Where ``doc_id`` can still be found (empty when it is really gone)."""
        found = []
        if await self.store.document(collection, doc_id) is not None:
            found.append("document record")
        if await self.store.contains_text(collection, doc_id):
            found.append("chunks or keyword entries")
        for probe in [*probes, doc_id]:
            for mode in MODES:
                result = await self.search(collection, probe, k=1000, mode=mode, groups=None)
                if any(h.document_id == doc_id for h in result.hits):
                    found.append(f"{mode} search for {probe[:40]!r}")
        return found

    async def status(self, collection: str) -> dict[str, Any]:
        coll = self.config(collection)
        state = await self.store.collection(collection)
        docs = await self.store.documents(collection)
        stats = await self.store.stats(collection)
        stale = await stale_documents(coll, docs, time.time())
        return {
            "collection": collection,
            "documents": len(docs),
            "chunks": stats["chunks"],
            "bytes": sum(d.bytes for d in docs),
            "embedder": state.embedder if state else self.embedder_id(collection),
            "embedder_version": state.embedder_version if state else 0,
            "embedder_current": state is None or state.embedder == self.embedder_id(collection),
            "stale_documents": stale,
            "orphans": stats["orphans"],
            "last_ingest": state.last_ingest if state else None,
            "index_bytes": stats["index_bytes"],
            "freshness_exceeded": bool(stale),
        }


async def stale_documents(
    coll: CollectionConfig, docs: list[DocumentRecord], now: float
) -> list[str]:
    """Ids whose source changed since indexing or that are older than ``freshness.max_age``."""
    max_age = coll.freshness.max_age_s
    changed = await asyncio.to_thread(_changed_sources, docs)
    return [
        d.id
        for d in docs
        if d.id in changed or (max_age is not None and now - d.indexed_at > max_age)
    ]


def _changed_sources(docs: list[DocumentRecord]) -> set[str]:
    """Documents whose source file changed (or vanished) since they were indexed."""
    from pathlib import Path

    out = set()
    for d in docs:
        if d.source and d.source_mtime is not None:
            try:
                if Path(d.source).stat().st_mtime > d.source_mtime:
                    out.add(d.id)
            except OSError:
                out.add(d.id)
    return out


def fuse(lists: list[tuple[list[Hit], float]], rrf_k: int = 60) -> list[Hit]:
    """Reciprocal rank fusion: sum of weight / (rrf_k + rank) over the lists."""
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for hits, weight in lists:
        for rank, hit in enumerate(hits, start=1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + weight / (rrf_k + rank)
            first.setdefault(hit.chunk_id, hit)
    ranked = sorted(scores, key=lambda c: -scores[c])
    out = []
    for cid in ranked:
        hit = first[cid]
        out.append(
            Hit(
                hit.document_id,
                hit.chunk_id,
                scores[cid],
                hit.text,
                hit.title,
                hit.source,
                hit.metadata,
            )
        )
    return out
