"""Budget reservations are leases: they lapse unless renewed, settle once, can freeze."""

from __future__ import annotations

from pilothouse.limits.budget import MemoryBudgets, Refusal


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _zero(key_id: str, period: str) -> int:
    return 0


async def test_an_unrenewed_lease_gives_its_reservation_back() -> None:
    clock = Clock()
    budgets = MemoryBudgets(_zero, lease_s=10, clock=clock)
    assert await budgets.reserve("k", "total", 100, 80, "dead") is None
    assert await budgets.reserve("k", "total", 100, 80, "next") == Refusal(20)
    clock.now += 10.5
    assert await budgets.reserved("k", "total") == 0
    assert await budgets.reserve("k", "total", 100, 80, "next") is None


async def test_renewal_keeps_an_in_flight_lease() -> None:
    clock = Clock()
    budgets = MemoryBudgets(_zero, lease_s=10, clock=clock)
    assert await budgets.reserve("k", "total", 100, 80, "live") is None
    for _ in range(5):
        clock.now += 6
        await budgets.renew()
    assert await budgets.reserved("k", "total") == 80
    await budgets.settle("k", "total", "live", 30)
    await budgets.settle("k", "total", "live", 0)  # a second settle releases nothing more
    assert await budgets.reserved("k", "total") == 0
    assert await budgets.spent("k", "total") == 30


async def test_freeze_refuses_until_the_budget_changes() -> None:
    budgets = MemoryBudgets(_zero)
    assert await budgets.reserve("k", "total", 1000, 10, "a") is None
    await budgets.settle("k", "total", "a", 50, freeze=1000)
    assert await budgets.reserve("k", "total", 1000, 1, "b") == Refusal(0, frozen=True)
    assert await budgets.reserve("k", "total", 2000, 1, "c") is None


async def test_budgets_beyond_float_precision_stay_exact() -> None:
    budgets = MemoryBudgets(_zero)
    budget = 2**63 - 1
    assert await budgets.reserve("k", "total", budget, 2**53 + 1, "a") is None
    refusal = await budgets.reserve("k", "total", budget, budget, "b")
    assert refusal == Refusal(budget - 2**53 - 1)
