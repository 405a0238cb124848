"""Budgets: reserve a request's worst-case cost up front, settle to the real cost after.

Reservation makes concurrent requests see each other's in-flight spend, so
fifty parallel calls against a nearly spent budget cannot overshoot it. The
spent total is loaded from the usage ledger on first use of a period, so a
restart (or a new replica) starts from the truth.

Each reservation is a *lease* named by the request id: it expires after
``limits.reservation_lease_s`` unless the process holding it renews it, so a
replica killed with requests in flight gives their reserved money back once
the lease runs out (the next reservation on any replica reaps expired ones).
Settling looks the lease up by id, so a reservation is released exactly once.

Money stays integer end to end: in Redis every sum and comparison is done by
Redis' own 64-bit integer commands (HINCRBY, DECRBY on a scratch key) and
values come back as strings, never as Lua doubles (exact only to 2^53).
A settlement above its reservation can *freeze* the key's budget for the
period (see docs/costs.md): further reservations are refused until the period
ends or the key's budget changes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, cast

from redis.asyncio import Redis

SpentLoader = Callable[[str, str], Awaitable[int]]
INT64_MAX = 2**63 - 1


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


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a reservation was refused: ``left`` pico-USD, or a frozen budget."""

    left: int
    frozen: bool = False


class BudgetBackend(Protocol):
    async def reserve(
        self, key_id: str, period: str, budget: int, amount: int, lease_id: str
    ) -> Refusal | None:
        """Reserve ``amount`` pico-USD under ``lease_id``; ``None`` if granted."""

    async def settle(
        self, key_id: str, period: str, lease_id: str, actual: int, *, freeze: int | None = None
    ) -> None:
        """Release the lease and charge ``actual``; ``freeze`` = the budget to freeze at."""

    async def spent(self, key_id: str, period: str) -> int: ...

    async def renew(self) -> None:
        """Extend the leases of this process's in-flight reservations."""


def _clamp(amount: int) -> int:
    return min(max(int(amount), 0), INT64_MAX)


@dataclass(slots=True)
class _Entry:
    spent: int
    leases: dict[str, tuple[int, float]]  # lease id -> (amount, expiry on the monotonic clock)
    frozen: int | None = None

    def reap(self, now: float) -> None:
        for lease_id in [k for k, (_, exp) in self.leases.items() if exp <= now]:
            del self.leases[lease_id]

    @property
    def reserved(self) -> int:
        return sum(amount for amount, _ in self.leases.values())


class MemoryBudgets:
    """One process's budgets (Python ints are exact at any size)."""

    def __init__(
        self,
        loader: SpentLoader,
        lease_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.loader = loader
        self.lease_s = lease_s
        self.clock = clock
        self._state: dict[tuple[str, str], _Entry] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._active: dict[str, tuple[str, str]] = {}

    async def _entry(self, key_id: str, period: str) -> _Entry:
        slot = (key_id, period)
        entry = self._state.get(slot)
        if entry is not None:
            return entry
        lock = self._locks.setdefault(slot, asyncio.Lock())
        async with lock:
            entry = self._state.get(slot)
            if entry is None:
                entry = _Entry(await self.loader(key_id, period), {})
                self._state[slot] = entry
        return entry

    async def reserve(
        self, key_id: str, period: str, budget: int, amount: int, lease_id: str
    ) -> Refusal | None:
        entry = await self._entry(key_id, period)
        now = self.clock()
        entry.reap(now)
        if entry.frozen is not None:
            if entry.frozen == budget:
                return Refusal(0, frozen=True)
            entry.frozen = None
        left = budget - entry.spent - entry.reserved
        if entry.spent >= budget or left < 0:
            return Refusal(max(left, 0))
        if amount > left:
            return Refusal(left)
        entry.leases[lease_id] = (amount, now + self.lease_s)
        self._active[lease_id] = (key_id, period)
        return None

    async def settle(
        self, key_id: str, period: str, lease_id: str, actual: int, *, freeze: int | None = None
    ) -> None:
        key_id, period = self._active.pop(lease_id, (key_id, period))
        entry = await self._entry(key_id, period)
        entry.leases.pop(lease_id, None)
        entry.spent += actual
        if freeze is not None:
            entry.frozen = freeze

    async def spent(self, key_id: str, period: str) -> int:
        return (await self._entry(key_id, period)).spent

    async def reserved(self, key_id: str, period: str) -> int:
        entry = await self._entry(key_id, period)
        entry.reap(self.clock())
        return entry.reserved

    async def renew(self) -> None:
        expiry = self.clock() + self.lease_s
        for lease_id, slot in list(self._active.items()):
            entry = self._state.get(slot)
            if entry is not None and lease_id in entry.leases:
                entry.leases[lease_id] = (entry.leases[lease_id][0], expiry)


# KEYS: 1 budget hash (spent, reserved, frozen), 2 lease zset (id -> expiry ms),
# 3 lease amounts hash (id -> pico), 4 scratch counter. Redis TIME is the one clock.
_REAP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(expired) do
  local amt = redis.call('HGET', KEYS[3], id)
  if amt and amt ~= '0' then
    local r = redis.call('HINCRBY', KEYS[1], 'reserved', '-' .. amt)
    if r < 0 then redis.call('HSET', KEYS[1], 'reserved', '0') end
  end
  redis.call('HDEL', KEYS[3], id)
  redis.call('ZREM', KEYS[2], id)
end
"""

_RESERVE = (
    _REAP
    + """
local frozen = redis.call('HGET', KEYS[1], 'frozen')
if frozen then
  if frozen == ARGV[1] then return 'frozen' end
  redis.call('HDEL', KEYS[1], 'frozen')
end
local spent = redis.call('HGET', KEYS[1], 'spent') or '0'
local reserved = redis.call('HGET', KEYS[1], 'reserved') or '0'
redis.call('SET', KEYS[4], ARGV[1])
local unspent = redis.call('DECRBY', KEYS[4], spent)
if unspent <= 0 then redis.call('DEL', KEYS[4]); return 'left:0' end
local left = redis.call('DECRBY', KEYS[4], reserved)
if left < 0 then redis.call('DEL', KEYS[4]); return 'left:0' end
local left_text = redis.call('GET', KEYS[4])
local after = redis.call('DECRBY', KEYS[4], ARGV[2])
redis.call('DEL', KEYS[4])
if after < 0 then return 'left:' .. left_text end
redis.call('HINCRBY', KEYS[1], 'reserved', ARGV[2])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[3])
return 'ok'
"""
)

_SETTLE = """
local amt = redis.call('HGET', KEYS[3], ARGV[1])
if amt then
  if amt ~= '0' then
    local r = redis.call('HINCRBY', KEYS[1], 'reserved', '-' .. amt)
    if r < 0 then redis.call('HSET', KEYS[1], 'reserved', '0') end
  end
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
if ARGV[2] ~= '0' then redis.call('HINCRBY', KEYS[1], 'spent', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'frozen', ARGV[3]) end
return 1
"""

_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i]) end
return 1
"""

_RESERVED = (
    _REAP
    + """
return redis.call('HGET', KEYS[1], 'reserved') or '0'
"""
)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBudgets:
    """Budget counters in Redis shared by every replica (integer pico-USD strings)."""

    def __init__(
        self, redis: Redis, prefix: str, loader: SpentLoader, lease_s: float = 60.0
    ) -> None:
        self.redis = redis
        self.prefix = prefix + "budget:"
        self.loader = loader
        self.lease_ms = max(1, int(lease_s * 1000))
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)
        self._renew = redis.register_script(_RENEW)
        self._reserved = redis.register_script(_RESERVED)
        self._initialised: set[str] = set()
        self._active: dict[str, str] = {}  # lease id -> budget hash name

    @staticmethod
    def _keys(name: str) -> list[str]:
        return [name, name + ":leases", name + ":amounts", name + ":scratch"]

    async def _key(self, key_id: str, period: str) -> str:
        name = f"{self.prefix}{key_id}:{period}"
        if name not in self._initialised:
            # redis-py types these as ``Awaitable[T] | T`` (sync and async clients share stubs).
            if not await cast(Awaitable[bool], self.redis.hexists(name, "spent")):
                spent = str(await self.loader(key_id, period))
                await cast(Awaitable[bool], self.redis.hsetnx(name, "spent", spent))
            self._initialised.add(name)
        return name

    async def reserve(
        self, key_id: str, period: str, budget: int, amount: int, lease_id: str
    ) -> Refusal | None:
        name = await self._key(key_id, period)
        args = [str(_clamp(budget)), str(_clamp(amount)), lease_id, str(self.lease_ms)]
        text = _text(await self._reserve(keys=self._keys(name), args=args))
        if text == "ok":
            self._active[lease_id] = name
            return None
        if text == "frozen":
            return Refusal(0, frozen=True)
        return Refusal(int(text.removeprefix("left:")))

    async def settle(
        self, key_id: str, period: str, lease_id: str, actual: int, *, freeze: int | None = None
    ) -> None:
        name = self._active.pop(lease_id, None) or await self._key(key_id, period)
        frozen = "" if freeze is None else str(_clamp(freeze))
        await self._settle(keys=self._keys(name), args=[lease_id, str(_clamp(actual)), frozen])

    async def spent(self, key_id: str, period: str) -> int:
        name = await self._key(key_id, period)
        value = await cast(Awaitable[bytes | None], self.redis.hget(name, "spent"))
        return int(_text(value)) if value is not None else 0

    async def reserved(self, key_id: str, period: str) -> int:
        """Pico-USD held by live leases (expired ones are reaped first)."""
        name = await self._key(key_id, period)
        return int(_text(await self._reserved(keys=self._keys(name), args=[])))

    async def renew(self) -> None:
        by_name: dict[str, list[str]] = {}
        for lease_id, name in list(self._active.items()):
            by_name.setdefault(name, []).append(lease_id)
        for name, ids in by_name.items():
            await self._renew(keys=[name + ":leases"], args=[str(self.lease_ms), *ids])
