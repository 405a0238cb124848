"""Exact money, token-bucket limits and budget reservations (in-process backends)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilothouse.config.schema import PriceConfig
from pilothouse.costs.pricing import PriceTable, TokenPrice
from pilothouse.limits.budget import MemoryBudgets, period_key
from pilothouse.limits.money import pico_to_str, usd_to_pico
from pilothouse.limits.ratelimit import MemoryRateLimiter, Take
from pilothouse.providers.base import Usage
from pilothouse.tokens import input_upper_bound


def test_cost_is_exact_decimal() -> None:
    table = PriceTable({"m": PriceConfig(input=Decimal("0.15"), output=Decimal("0.60"))})
    cost = table.cost_pico("m", Usage(input_tokens=1_000_003, output_tokens=7))
    # 1_000_003 * 0.15e-6 + 7 * 0.6e-6 = 0.15000045 + 0.0000042
    assert pico_to_str(cost) == "0.15000465"


def test_cached_tokens_use_cached_price() -> None:
    price = TokenPrice.from_per_million(
        PriceConfig(input=Decimal("2.5"), output=Decimal("10"), cached_input=Decimal("1.25"))
    )
    usage = Usage(input_tokens=1000, output_tokens=0, cached_input_tokens=400)
    assert price.cost_pico(usage) == 600 * 2_500_000 + 400 * 1_250_000


def test_bundled_prices_and_provider_prefix() -> None:
    table = PriceTable()
    assert table.known("gpt-4o-mini")
    assert table.get("openai/gpt-4o-mini") == table.get("gpt-4o-mini")
    assert table.cost_pico("unknown-model", Usage(10, 10)) == 0


@given(st.decimals(min_value=0, max_value=10**6, places=6))
def test_usd_pico_round_trip(amount: Decimal) -> None:
    assert Decimal(pico_to_str(usd_to_pico(amount))) == amount


@given(st.text(max_size=300))
def test_upper_bound_never_below_utf8_bytes(text: str) -> None:
    request = {"messages": [{"role": "user", "content": text}]}
    assert input_upper_bound(request) >= len(text.encode())


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_token_bucket_takes_all_or_nothing_and_refills() -> None:
    clock = Clock()
    rl = MemoryRateLimiter(clock)
    both = [Take("k:rpm", 2, 1), Take("k:tpm", 100, 60)]
    assert await rl.acquire(both) == 0
    wait = await rl.acquire(both)
    assert wait == pytest.approx(20 * 60 / 100)  # TPM short by 20 tokens
    assert await rl.acquire([Take("k:rpm", 2, 1)]) == 0, "failed take must not consume RPM"
    clock.now += 60
    assert await rl.acquire(both) == 0


async def test_reconcile_returns_unused_tokens() -> None:
    rl = MemoryRateLimiter(Clock())
    assert await rl.acquire([Take("t", 100, 90)]) == 0
    await rl.adjust("t", 100, -80)  # used only 10
    assert await rl.acquire([Take("t", 100, 85)]) == 0


async def test_budget_reservations_never_overshoot_under_concurrency() -> None:
    async def loader(key_id: str, period: str) -> int:
        return 900

    budgets = MemoryBudgets(loader)
    grants = await asyncio.gather(
        *(budgets.reserve("k", "total", 1000, 30, f"r{i}") for i in range(50))
    )
    granted = [f"r{i}" for i, g in enumerate(grants) if g is None]
    assert len(granted) == 3
    for lease in granted:
        await budgets.settle("k", "total", lease, 30)
    assert await budgets.spent("k", "total") == 990


def test_period_keys() -> None:
    from datetime import UTC, datetime

    moment = datetime(2026, 11, 23, 5, tzinfo=UTC)
    assert period_key("day", moment) == "d:2026-11-23"
    assert period_key("month", moment) == "m:2026-11"
    assert period_key("total", moment) == "total"
