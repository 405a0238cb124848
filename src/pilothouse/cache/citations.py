"""Which cached answers cite which RAG documents, so deleting a document deletes them.

An answer is stored with its citations: the documents a prompt bundle's
retrieval put in its prompt, plus any ``metadata.citations`` the application
sent (``[{"collection", "document"}]``). Each citation keeps the set of cache
entries (``x:<exact key>`` or ``s:<partition>:<entry id>``) that cite it; a
document deletion pops that set and deletes every entry in it. In Redis the
sets live beside the shared caches (same prefix, expiring with the longest
entry), so a deletion on any replica or the CLI purges them for all; in
memory they cover this process's caches only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis

Citation = tuple[str, str]  # (collection, document id)


def from_request(request: Mapping[str, Any]) -> list[Citation]:
    """The ``metadata.citations`` an application put on a chat request."""
    metadata = request.get("metadata")
    raw = metadata.get("citations") if isinstance(metadata, dict) else None
    out: list[Citation] = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict):
            coll, doc = item.get("collection"), item.get("document") or item.get("document_id")
            if isinstance(coll, str) and isinstance(doc, str):
                out.append((coll, doc))
    return out


def exact_ref(key: str) -> str:
    return "x:" + key


def semantic_ref(partition: str, entry_id: str) -> str:
    return f"s:{partition}:{entry_id}"


class Citations(Protocol):
    async def add(self, cites: Iterable[Citation], refs: list[str], ttl_s: float) -> None: ...

    async def pop(self, collection: str, doc_id: str) -> list[str]: ...


class MemoryCitations:
    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self._refs: dict[Citation, dict[str, float]] = {}  # ref -> expiry

    async def add(self, cites: Iterable[Citation], refs: list[str], ttl_s: float) -> None:
        now = self.clock()
        for cite in cites:
            held = self._refs.setdefault(cite, {})
            for ref in refs:
                held[ref] = now + ttl_s
            for ref in [r for r, exp in held.items() if exp <= now]:
                del held[ref]

    async def pop(self, collection: str, doc_id: str) -> list[str]:
        return list(self._refs.pop((collection, doc_id), {}))


class RedisCitations:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis: Any = redis  # redis-py's stubs type every command as sync-or-async
        self.prefix = prefix + "cite:"

    def _key(self, cite: Citation) -> str:
        return self.prefix + orjson.dumps(list(cite)).decode()

    async def add(self, cites: Iterable[Citation], refs: list[str], ttl_s: float) -> None:
        if not refs:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for cite in cites:
                key = self._key(cite)
                pipe.sadd(key, *refs)
                pipe.expire(key, max(int(ttl_s) + 1, 1), gt=True)
                pipe.expire(key, max(int(ttl_s) + 1, 1), nx=True)
            await pipe.execute()

    async def pop(self, collection: str, doc_id: str) -> list[str]:
        key = self._key((collection, doc_id))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.smembers(key).delete(key)
            members, _ = await pipe.execute()
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)


async def purge(citations: Citations, cache: Any, index: Any, collection: str, doc_id: str) -> int:
    """Delete every cached answer citing the document; returns how many were found."""
    gone = 0
    for ref in await citations.pop(collection, doc_id):
        kind, _, rest = ref.partition(":")
        if kind == "x":
            gone += bool(await cache.delete(rest))
        elif kind == "s" and index is not None:
            partition, _, entry_id = rest.rpartition(":")
            gone += bool(await index.remove(partition, entry_id))
    return gone


async def purge_shared(settings: Any, collection: str, doc_ids: list[str]) -> int:
    """From another process (the CLI): purge the shared Redis caches; 0 when they are in memory."""
    if settings.cache.backend != "redis" or not settings.redis.url or not doc_ids:
        return 0
    from pilothouse.cache.response_cache import RedisResponseCache
    from pilothouse.cache.vector_index import RedisVectorIndex

    redis = Redis.from_url(settings.redis.url)
    prefix = settings.redis.prefix
    try:
        cites = RedisCitations(redis, prefix)
        cache, index = RedisResponseCache(redis, prefix), RedisVectorIndex(redis, prefix, 1)
        return sum([await purge(cites, cache, index, collection, d) for d in doc_ids])
    finally:
        await redis.aclose()
