"""Budgets: reserve a request's worst-case cost up front, settle to the real cost after.

Reservation makes concurrent requests see each other's in-flight spend, so
fifty parallel calls against a nearly spent budget cannot overshoot it. The
spent total is loaded from the usage ledger on first use of a period, so a
restart (or a new replica) starts from the truth.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol, cast

from redis.asyncio import Redis

SpentLoader = Callable[[str, str], Awaitable[int]]


def period_key(period: str, now: datetime | None = None) -> str:
    """The budget window a moment belongs to: ``total``, ``d:YYYY-MM-DD`` or ``m:YYYY-MM``."""
    now = now or datetime.now(UTC)
    if period == "day":
        return "d:" + now.strftime("%Y-%m-%d")
    if period == "month":
        return "m:" + now.strftime("%Y-%m")
    return "total"


def period_start(period_id: str) -> datetime | None:
    """Inclusive start of a period id; ``None`` for ``total``."""
    if period_id.startswith("d:"):
        return datetime.strptime(period_id[2:], "%Y-%m-%d").replace(tzinfo=UTC)
    if period_id.startswith("m:"):
        return datetime.strptime(period_id[2:], "%Y-%m").replace(tzinfo=UTC)
    return None


class BudgetBackend(Protocol):
    async def reserve(self, key_id: str, period: str, budget: int, amount: int) -> int | None:
        """Reserve ``amount`` pico-USD; ``None`` if granted, else what is left (pico)."""

    async def settle(self, key_id: str, period: str, reserved: int, actual: int) -> None: ...

    async def spent(self, key_id: str, period: str) -> int: ...


class MemoryBudgets:
    def __init__(self, loader: SpentLoader) -> None:
        self.loader = loader
        self._state: dict[tuple[str, str], list[int]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def _entry(self, key_id: str, period: str) -> list[int]:
        slot = (key_id, period)
        entry = self._state.get(slot)
        if entry is not None:
            return entry
        lock = self._locks.setdefault(slot, asyncio.Lock())
        async with lock:
            entry = self._state.get(slot)
            if entry is None:
                entry = [await self.loader(key_id, period), 0]
                self._state[slot] = entry
        return entry

    async def reserve(self, key_id: str, period: str, budget: int, amount: int) -> int | None:
        entry = await self._entry(key_id, period)
        spent, reserved = entry
        if spent + reserved + amount > budget or spent >= budget:
            return max(budget - spent - reserved, 0)
        entry[1] += amount
        return None

    async def settle(self, key_id: str, period: str, reserved: int, actual: int) -> None:
        entry = await self._entry(key_id, period)
        entry[0] += actual
        entry[1] = max(entry[1] - reserved, 0)

    async def spent(self, key_id: str, period: str) -> int:
        return (await self._entry(key_id, period))[0]


_RESERVE = """
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
local budget = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])
if spent + reserved + amount > budget or spent >= budget then
  local left = budget - spent - reserved
  if left < 0 then left = 0 end
  return tostring(left)
end
redis.call('HINCRBY', KEYS[1], 'reserved', amount)
return 'ok'
"""

_SETTLE = """
redis.call('HINCRBY', KEYS[1], 'spent', tonumber(ARGV[2]))
local r = redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(ARGV[1]))
if r < 0 then redis.call('HSET', KEYS[1], 'reserved', 0) end
return 1
"""


class RedisBudgets:
    """Budget counters in Redis hashes (integers in pico-USD, so HINCRBY is exact)."""

    def __init__(self, redis: Redis, prefix: str, loader: SpentLoader) -> None:
        self.redis = redis
        self.prefix = prefix + "budget:"
        self.loader = loader
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)
        self._initialised: set[str] = set()

    async def _key(self, key_id: str, period: str) -> str:
        name = f"{self.prefix}{key_id}:{period}"
        if name not in self._initialised:
            # redis-py types hash commands as "Awaitable[T] | T" (sync and async share them).
            if not await cast("Awaitable[bool]", self.redis.hexists(name, "spent")):
                spent = await self.loader(key_id, period)
                await cast("Awaitable[bool]", self.redis.hsetnx(name, "spent", str(spent)))
            self._initialised.add(name)
        return name

    async def reserve(self, key_id: str, period: str, budget: int, amount: int) -> int | None:
        name = await self._key(key_id, period)
        result = await self._reserve(keys=[name], args=[budget, amount])
        text = result.decode() if isinstance(result, bytes) else str(result)
        return None if text == "ok" else int(text)

    async def settle(self, key_id: str, period: str, reserved: int, actual: int) -> None:
        name = await self._key(key_id, period)
        await self._settle(keys=[name], args=[reserved, actual])

    async def spent(self, key_id: str, period: str) -> int:
        name = await self._key(key_id, period)
        value = await cast("Awaitable[str | None]", self.redis.hget(name, "spent"))
        return int(value or 0)
