"""Budgets over several scopes (key, user, team): all reserve or none, on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from pilothouse.limits.budget import BudgetBackend, MemoryBudgets, RedisBudgets, Refusal, Slot

pytestmark = pytest.mark.integration


async def _nothing_spent(scope: str, period: str) -> int:
    return 0


@pytest.fixture(params=["memory", "redis"])
async def budgets(
    request: pytest.FixtureRequest, redis_prefix: str
) -> AsyncIterator[tuple[BudgetBackend, BudgetBackend]]:
    """Two backends sharing state (two replicas for Redis; one process for memory)."""
    if request.param == "memory":
        one = MemoryBudgets(_nothing_spent)
        yield one, one
        return
    client = Redis.from_url(request.getfixturevalue("redis_url"))
    yield (
        RedisBudgets(client, redis_prefix, _nothing_spent),
        RedisBudgets(client, redis_prefix, _nothing_spent),
    )
    keys = [k async for k in client.scan_iter(match=redis_prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_a_refusing_scope_reserves_nothing_in_the_others(
    budgets: tuple[BudgetBackend, BudgetBackend],
) -> None:
    a, b = budgets
    team = Slot("team_1", "total", 1000)
    key_a, key_b = Slot("key_a", "total", 10**6), Slot("key_b", "total", 10**6)
    assert await a.reserve_all([key_a, team], 600, "r1") is None
    # The team has 400 left: key_b's 500 is refused by the team (index 1), and key_b's
    # own budget holds nothing for it.
    assert await b.reserve_all([key_b, team], 500, "r2") == Refusal(400, slot=1)
    assert await b.reserve_all([key_b, team], 400, "r3") is None
    assert await b.reserve_all([key_b, team], 1, "r4") == Refusal(0, slot=1)
    await a.settle_all([key_a, team], "r1", 100)
    await b.settle_all([key_b, team], "r3", 50)
    assert await a.spent("team_1", "total") == 150
    assert await b.spent("key_b", "total") == 50
    assert await a.spent("key_a", "total") == 100
    # The team's 850 left are shared by both keys again.
    assert await b.reserve_all([key_b, team], 851, "r5") == Refusal(850, slot=1)
    assert await a.reserve_all([key_a, team], 850, "r6") is None


async def test_a_cost_above_its_reservation_freezes_every_scope_it_was_charged_to(
    budgets: tuple[BudgetBackend, BudgetBackend],
) -> None:
    a, b = budgets
    user, team = Slot("user_1", "total", 1000), Slot("team_1", "total", 5000)
    assert await a.reserve_all([user, team], 10, "r1") is None
    await a.settle_all([user, team], "r1", 75, freeze=True)
    assert await b.reserve_all([team], 1, "r2") == Refusal(0, frozen=True, slot=0)
    assert await b.reserve_all([Slot("key_x", "total", 9), user], 1, "r3") == Refusal(
        0, frozen=True, slot=1
    )
    # A changed budget reopens the scope (as for keys).
    assert await b.reserve_all([Slot("team_1", "total", 6000)], 1, "r4") is None
