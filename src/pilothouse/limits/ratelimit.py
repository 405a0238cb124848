"""RPM/TPM token buckets: reserve an estimate before the call, reconcile after.

Several buckets (e.g. key RPM, key TPM, key+alias TPM) are checked and taken
together, atomically: in-process under the event loop, across replicas by one
Redis Lua script using Redis' own clock, so two gateways enforce one limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class Take:
    """Take ``amount`` from bucket ``key`` whose capacity is ``limit`` per minute."""

    key: str
    limit: int
    amount: int


class RateLimiter(Protocol):
    async def acquire(self, takes: Sequence[Take]) -> float:
        """Take all or nothing; returns 0.0 on success, else seconds until it would fit."""

    async def acquire_which(self, takes: Sequence[Take]) -> tuple[float, int]:
        """Like :meth:`acquire`, plus the index of the take that must wait longest."""

    async def adjust(self, key: str, limit: int, delta: int) -> None:
        """Reconcile: take ``delta`` more (or give back when negative)."""


class MemoryRateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, list[float]] = {}

    def _level(self, key: str, limit: int, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return float(limit)
        tokens, ts = bucket
        return min(float(limit), tokens + (now - ts) * limit / 60.0)

    async def acquire(self, takes: Sequence[Take]) -> float:
        return (await self.acquire_which(takes))[0]

    async def acquire_which(self, takes: Sequence[Take]) -> tuple[float, int]:
        now = self.clock()
        wait, which = 0.0, 0
        levels = []
        for index, t in enumerate(takes):
            level = self._level(t.key, t.limit, now)
            levels.append(level)
            if level < t.amount and (t.amount - level) * 60.0 / t.limit > wait:
                wait, which = (t.amount - level) * 60.0 / t.limit, index
        if wait > 0:
            return wait, which
        for t, level in zip(takes, levels, strict=True):
            self._buckets[t.key] = [level - t.amount, now]
        return 0.0, 0

    async def adjust(self, key: str, limit: int, delta: int) -> None:
        if delta == 0:
            return
        now = self.clock()
        level = self._level(key, limit, now)
        self._buckets[key] = [min(float(limit), level - delta), now]


_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local wait = 0
local which = 0
local levels = {}
for i = 1, #KEYS do
  local limit = tonumber(ARGV[2 * i - 1])
  local amount = tonumber(ARGV[2 * i])
  local v = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local tokens = tonumber(v[1])
  local ts = tonumber(v[2])
  if tokens == nil then tokens = limit; ts = now end
  local level = math.min(limit, tokens + (now - ts) * limit / 60)
  levels[i] = level
  if level < amount then
    local w = (amount - level) * 60 / limit
    if w > wait then wait = w; which = i - 1 end
  end
end
if wait > 0 then return tostring(wait) .. ':' .. which end
for i = 1, #KEYS do
  local left = levels[i] - tonumber(ARGV[2 * i])
  redis.call('HSET', KEYS[i], 'tokens', tostring(left), 'ts', tostring(now))
  redis.call('EXPIRE', KEYS[i], 180)
end
return '0:0'
"""

_ADJUST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit = tonumber(ARGV[1])
local delta = tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(v[1])
local ts = tonumber(v[2])
if tokens == nil then tokens = limit; ts = now end
local level = math.min(limit, tokens + (now - ts) * limit / 60)
redis.call('HSET', KEYS[1], 'tokens', tostring(math.min(limit, level - delta)), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], 180)
return 1
"""


class RedisRateLimiter:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix + "rl:"
        self._acquire = redis.register_script(_ACQUIRE)
        self._adjust = redis.register_script(_ADJUST)

    async def acquire(self, takes: Sequence[Take]) -> float:
        return (await self.acquire_which(takes))[0]

    async def acquire_which(self, takes: Sequence[Take]) -> tuple[float, int]:
        if not takes:
            return 0.0, 0
        keys = [self.prefix + t.key for t in takes]
        args: list[int] = []
        for t in takes:
            args += [t.limit, t.amount]
        result = await self._acquire(keys=keys, args=args)
        wait, _, which = (result.decode() if isinstance(result, bytes) else str(result)).partition(
            ":"
        )
        return float(wait), int(which or 0)

    async def adjust(self, key: str, limit: int, delta: int) -> None:
        if delta:
            await self._adjust(keys=[self.prefix + key], args=[limit, delta])
