"""Vector indexes for the semantic cache: one small brute-force partition per scope.

Vectors are L2-normalised, so similarity is a dot product. Partitions (scope +
everything else that decides the answer) keep each scan small; entries are
bounded in number (LRU) and in time (TTL). The Redis variant stores vectors as
raw float32 bytes so replicas share entries.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import orjson
from redis.asyncio import Redis


@dataclass(slots=True)
class Entry:
    id: str
    text: str  # the normalised last user turn it answered (exact lookups)
    query: str  # that turn as written (the content gate compares these)
    response: dict[str, Any]
    expires: float  # wall clock (time.time)
    tokens: int = 0  # upstream tokens the answer cost (what a hit saves)


@dataclass(frozen=True, slots=True)
class Candidate:
    entry: Entry
    similarity: float


class VectorIndex(Protocol):
    async def exact(self, partition: str, text: str) -> Entry | None: ...

    async def nearest(
        self, partition: str, vector: np.ndarray, threshold: float, k: int
    ) -> list[Candidate]: ...

    async def add(self, partition: str, vector: np.ndarray, entry: Entry) -> None: ...

    async def remove(self, partition: str, entry_id: str) -> bool: ...


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Rows of the k best scores, best first, without sorting the whole partition."""
    if len(scores) > k:
        best = np.argpartition(-scores, k)[:k]
        return best[np.argsort(-scores[best])]
    return np.argsort(-scores)


class _Partition:
    __slots__ = ("by_text", "ids", "matrix", "n")

    def __init__(self, dim: int) -> None:
        self.matrix = np.zeros((16, dim), dtype=np.float32)
        self.ids: list[str] = []
        self.n = 0
        self.by_text: dict[str, str] = {}

    def add(self, entry_id: str, vector: np.ndarray) -> None:
        if self.n == len(self.matrix):
            grown = np.zeros((self.n * 2, self.matrix.shape[1]), dtype=np.float32)
            grown[: self.n] = self.matrix
            self.matrix = grown
        self.matrix[self.n] = vector
        self.ids.append(entry_id)
        self.n += 1

    def remove(self, entry_id: str) -> None:
        row = self.ids.index(entry_id)
        last = self.n - 1
        self.matrix[row] = self.matrix[last]
        self.ids[row] = self.ids[last]
        self.ids.pop()
        self.n = last


class MemoryVectorIndex:
    """In-process: a float32 matrix per partition, one global LRU over all entries."""

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.time) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._parts: dict[str, _Partition] = {}
        self._entries: OrderedDict[str, tuple[str, Entry]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, entry_id: str) -> None:
        partition, entry = self._entries.pop(entry_id)
        part = self._parts[partition]
        part.remove(entry_id)
        if part.by_text.get(entry.text) == entry_id:
            del part.by_text[entry.text]
        if part.n == 0:
            del self._parts[partition]

    def _live(self, entry_id: str) -> Entry | None:
        item = self._entries.get(entry_id)
        if item is None:
            return None
        if item[1].expires <= self.clock():
            self._drop(entry_id)
            return None
        self._entries.move_to_end(entry_id)
        return item[1]

    async def exact(self, partition: str, text: str) -> Entry | None:
        part = self._parts.get(partition)
        entry_id = part.by_text.get(text) if part is not None else None
        return self._live(entry_id) if entry_id is not None else None

    async def nearest(
        self, partition: str, vector: np.ndarray, threshold: float, k: int
    ) -> list[Candidate]:
        return self.search(partition, vector, threshold, k)

    def search(
        self, partition: str, vector: np.ndarray, threshold: float, k: int
    ) -> list[Candidate]:
        part = self._parts.get(partition)
        if part is None or part.n == 0:
            return []
        scores = part.matrix[: part.n] @ vector
        order = _top(scores, k)
        out = []
        ids = list(part.ids)  # _live may drop expired rows while we walk
        for row in order:
            score = float(scores[row])
            if score < threshold:
                break
            entry = self._live(ids[row])
            if entry is not None:
                out.append(Candidate(entry, score))
        return out

    async def add(self, partition: str, vector: np.ndarray, entry: Entry) -> None:
        part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = _Partition(len(vector))
        old = part.by_text.get(entry.text)
        if old is not None:
            self._drop(old)
            part = self._parts.setdefault(partition, _Partition(len(vector)))
        part.add(entry.id, vector)
        part.by_text[entry.text] = entry.id
        self._entries[entry.id] = (partition, entry)
        while len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    async def remove(self, partition: str, entry_id: str) -> bool:
        """Drop one entry now (a document it cited was deleted)."""
        item = self._entries.get(entry_id)
        if item is None or item[0] != partition:
            return False
        self._drop(entry_id)
        return True


class RedisVectorIndex:
    """Shared by replicas: per partition a hash of vectors (bytes), one of entries, and a
    sorted set of expiries that bounds the partition; a lookup scans one partition."""

    def __init__(self, redis: Redis, prefix: str, max_per_partition: int) -> None:
        self.redis: Any = redis  # redis-py's stubs type every command as sync-or-async
        self.prefix = prefix + "semcache:"
        self.max_per_partition = max_per_partition

    def _keys(self, partition: str) -> tuple[str, str, str, str]:
        base = self.prefix + partition
        return base + ":v", base + ":e", base + ":z", base + ":t"

    async def exact(self, partition: str, text: str) -> Entry | None:
        _, ekey, _, tkey = self._keys(partition)
        entry_id = await self.redis.hget(tkey, text)
        if entry_id is None:
            return None
        return self._entry(await self.redis.hget(ekey, entry_id))

    def _entry(self, blob: bytes | None) -> Entry | None:
        if blob is None:
            return None
        data = orjson.loads(blob)
        if data["expires"] <= time.time():
            return None
        return Entry(
            data["id"], data["text"], data["query"], data["response"], data["expires"],
            data["tokens"],
        )  # fmt: skip

    async def nearest(
        self, partition: str, vector: np.ndarray, threshold: float, k: int
    ) -> list[Candidate]:
        vkey, ekey, _, _ = self._keys(partition)
        raw = await self.redis.hgetall(vkey)
        if not raw:
            return []
        ids = list(raw)
        matrix = np.frombuffer(b"".join(raw[i] for i in ids), dtype=np.float32).reshape(
            len(ids), -1
        )
        scores = matrix @ vector
        order = [int(r) for r in _top(scores, k) if scores[r] >= threshold]
        if not order:
            return []
        blobs = await self.redis.hmget(ekey, [ids[r] for r in order])
        out = []
        for row, blob in zip(order, blobs, strict=True):
            entry = self._entry(blob)
            if entry is not None:
                out.append(Candidate(entry, float(scores[row])))
        return out

    async def add(self, partition: str, vector: np.ndarray, entry: Entry) -> None:
        vkey, ekey, zkey, tkey = self._keys(partition)
        blob = orjson.dumps(
            {
                "id": entry.id,
                "text": entry.text,
                "query": entry.query,
                "response": entry.response,
                "expires": entry.expires,
                "tokens": entry.tokens,
            }
        )
        now = time.time()
        expired = await self.redis.zrangebyscore(zkey, "-inf", now)
        async with self.redis.pipeline(transaction=True) as pipe:
            if expired:
                pipe.hdel(vkey, *expired).hdel(ekey, *expired).zrem(zkey, *expired)
            pipe.hset(vkey, entry.id, np.asarray(vector, dtype=np.float32).tobytes())
            pipe.hset(ekey, entry.id, blob)
            pipe.hset(tkey, entry.text, entry.id)
            pipe.zadd(zkey, {entry.id: entry.expires})
            ttl = max(int(entry.expires - now) + 1, 1)
            for key in (vkey, ekey, zkey, tkey):
                pipe.expire(key, ttl)
            pipe.zcard(zkey)
            results = await pipe.execute()
        excess = int(results[-1]) - self.max_per_partition
        if excess > 0:
            oldest = [m for m, _ in await self.redis.zpopmin(zkey, excess)]
            await self.redis.hdel(vkey, *oldest)
            await self.redis.hdel(ekey, *oldest)

    async def remove(self, partition: str, entry_id: str) -> bool:
        """Drop one entry now (a document it cited was deleted)."""
        vkey, ekey, zkey, tkey = self._keys(partition)
        blob = await self.redis.hget(ekey, entry_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(vkey, entry_id).hdel(ekey, entry_id).zrem(zkey, entry_id)
            if blob is not None:
                text = orjson.loads(blob)["text"]
                pipe.hget(tkey, text)
            results = await pipe.execute()
        if blob is not None and results[-1] is not None and results[-1].decode() == entry_id:
            await self.redis.hdel(tkey, orjson.loads(blob)["text"])
        return blob is not None
