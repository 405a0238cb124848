"""Both vector indexes behave alike: exact, nearest above a threshold, TTL and bounds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from redis.asyncio import Redis

from pilothouse.cache.vector_index import Entry, MemoryVectorIndex, RedisVectorIndex, VectorIndex

pytestmark = pytest.mark.integration


def vec(*xs: float) -> np.ndarray:
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def entry(n: int, ttl: float = 60.0) -> Entry:
    return Entry(f"e{n}", f"q{n}", f"Q{n}", {"n": n}, time.time() + ttl, tokens=n)


def run(
    make: Callable[[], Awaitable[tuple[VectorIndex, Any]]],
    body: Callable[[VectorIndex], Awaitable[None]],
) -> None:
    async def go() -> None:
        index, close = await make()
        try:
            await body(index)
        finally:
            await close()

    asyncio.run(go())


@pytest.fixture(params=["memory", "redis"])
def make(
    request: pytest.FixtureRequest, redis_prefix: str
) -> Callable[[], Awaitable[tuple[VectorIndex, Any]]]:
    async def memory() -> tuple[VectorIndex, Any]:
        async def close() -> None:
            return None

        return MemoryVectorIndex(3), close

    async def redis() -> tuple[VectorIndex, Any]:
        client = Redis.from_url("redis://127.0.0.1:6379")

        async def close() -> None:
            keys = [k async for k in client.scan_iter(redis_prefix + "*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()

        return RedisVectorIndex(client, redis_prefix, 3), close

    return memory if request.param == "memory" else redis


def test_nearest_exact_and_partitions(make: Any) -> None:
    async def body(index: VectorIndex) -> None:
        await index.add("p", vec(1, 0, 0), entry(1))
        await index.add("p", vec(0, 1, 0), entry(2))
        await index.add("other", vec(1, 0.1, 0), entry(3))
        found = await index.nearest("p", vec(1, 0.2, 0), 0.9, 5)
        assert [c.entry.id for c in found] == ["e1"] and found[0].similarity > 0.97
        assert await index.nearest("p", vec(0, 0, 1), 0.5, 5) == []
        assert await index.nearest("nowhere", vec(1, 0, 0), 0.5, 5) == []
        hit = await index.exact("p", "q2")
        assert hit is not None and hit.response == {"n": 2} and hit.query == "Q2"
        assert await index.exact("other", "q2") is None

    run(make, body)


def test_expired_entries_are_never_served(make: Any) -> None:
    async def body(index: VectorIndex) -> None:
        await index.add("p", vec(1, 0), entry(1, ttl=-1))
        assert await index.nearest("p", vec(1, 0), 0.5, 5) == []
        assert await index.exact("p", "q1") is None

    run(make, body)


def test_entries_are_bounded(make: Any) -> None:
    async def body(index: VectorIndex) -> None:
        for n in range(5):
            await index.add("p", vec(1, n * 0.01), entry(n))
        found = await index.nearest("p", vec(1, 0), 0.5, 10)
        assert sorted(c.entry.id for c in found) == ["e2", "e3", "e4"]  # the oldest two went

    run(make, body)
