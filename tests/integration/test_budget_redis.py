"""The Redis budget backend: integer money at any size, leases that lapse and reap."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from pilothouse.limits.budget import RedisBudgets, Refusal
from pilothouse.limits.money import usd_to_pico

pytestmark = pytest.mark.integration


@pytest.fixture
async def redis(redis_url: str, redis_prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    keys = [k async for k in client.scan_iter(match=redis_prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def backend(redis: Redis, prefix: str, spent: int = 0, lease_s: float = 60.0) -> RedisBudgets:
    async def loader(key_id: str, period: str) -> int:
        return spent

    return RedisBudgets(redis, prefix, loader, lease_s=lease_s)


@pytest.mark.parametrize(
    "budget",
    [usd_to_pico(100), usd_to_pico(10_000), 2**63 - 1, 2**63 - 7, 2**53 + 1],
    ids=["100usd", "10000usd", "int64max", "int64max-6", "2^53+1"],
)
async def test_refusals_report_exactly_what_is_left(
    redis: Redis, redis_prefix: str, budget: int
) -> None:
    budgets = backend(redis, redis_prefix, spent=3)
    # 2^53 + 1 is not a double: any float arithmetic on the way would show here.
    first = 2**53 + 1 if budget > 2**54 else 5
    assert await budgets.reserve("k", "total", budget, first, "a") is None
    refusal = await budgets.reserve("k", "total", budget, budget, "b")
    assert refusal == Refusal(budget - 3 - first)
    await budgets.settle("k", "total", "a", first)
    assert await budgets.spent("k", "total") == 3 + first
    assert await budgets.reserved("k", "total") == 0
    left = budget - 3 - first
    assert await budgets.reserve("k", "total", budget, left, "c") is None
    assert await budgets.reserve("k", "total", budget, 1, "d") == Refusal(0)


async def test_a_request_costing_more_than_int64_is_refused_not_an_error(
    redis: Redis, redis_prefix: str
) -> None:
    budgets = backend(redis, redis_prefix)
    assert await budgets.reserve("k", "total", usd_to_pico(100), 10**30, "a") == Refusal(
        usd_to_pico(100)
    )


async def test_a_lease_nobody_renews_is_reaped_by_the_next_reservation(
    redis: Redis, redis_prefix: str
) -> None:
    dead = backend(redis, redis_prefix, lease_s=0.2)
    alive = backend(redis, redis_prefix, lease_s=0.2)
    assert await dead.reserve("k", "total", 1000, 900, "r1") is None
    assert await alive.reserve("k", "total", 1000, 900, "r2") == Refusal(100)
    deadline = time.monotonic() + 10
    while await alive.reserve("k", "total", 1000, 900, "r2") is not None:
        assert time.monotonic() < deadline, "the dead replica's lease never lapsed"
        await asyncio.sleep(0.05)
    # The dead replica's late settle charges its cost but releases nothing twice.
    await dead.settle("k", "total", "r1", 10)
    assert await alive.reserved("k", "total") == 900
    assert await alive.spent("k", "total") == 10


async def test_renewed_leases_outlive_their_ttl(redis: Redis, redis_prefix: str) -> None:
    budgets = backend(redis, redis_prefix, lease_s=1.0)
    other = backend(redis, redis_prefix, lease_s=1.0)
    assert await budgets.reserve("k", "total", 1000, 700, "live") is None
    started = time.monotonic()
    while time.monotonic() - started < 3.0:  # three TTLs, renewed every 0.2 s
        await budgets.renew()
        assert await other.reserved("k", "total") == 700
        await asyncio.sleep(0.2)
    await budgets.settle("k", "total", "live", 5)
    assert await other.reserved("k", "total") == 0
    assert await other.spent("k", "total") == 5


async def test_freeze_holds_across_replicas_until_the_budget_changes(
    redis: Redis, redis_prefix: str
) -> None:
    a, b = backend(redis, redis_prefix), backend(redis, redis_prefix)
    assert await a.reserve("k", "total", 1000, 10, "r1") is None
    await a.settle("k", "total", "r1", 75, freeze=1000)
    assert await b.reserve("k", "total", 1000, 1, "r2") == Refusal(0, frozen=True)
    assert await b.reserve("k", "total", 5000, 1, "r3") is None
