"""Failed-authentication throttle: per source and per principal, exponential backoff.

Only *failures* are counted and only failures are refused: a request that
carries a valid key is authenticated before this throttle is consulted, so
an attacker hammering from one address (or at one principal) can never lock
the real owner of a key out. Each identity (``ip:…`` for the client address,
``key:…``/``admin_key`` for the principal that was tried) keeps a count of
failures; the count starts again after ``window_s`` without a failure. Past
``max_failures`` every further failure blocks the identity for
``backoff_base_s · 2^k`` seconds (capped at ``backoff_max_s``), answered
with 429 and ``Retry-After`` instead of 401.

Single process: in memory. With ``redis.url`` configured: one Lua script, so
every replica sees the same counts.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from pilothouse.config.schema import AuthThrottleConfig

log = logging.getLogger("pilothouse.auth")

KEY_PREFIX_LEN = 10  # the public `key_prefix` of a virtual key (limits/keys.py)
MAX_EXPONENT = 30


def identities(source: str | None, secret: str | None) -> list[str]:
    """Who a failed attempt counts against: the client address and the principal tried.

    The principal is the public prefix of a virtual key (``ph-…``, shown by
    the admin API anyway) or ``admin_key`` for anything else (a guess at the
    configured admin key); the secret itself is never kept or logged.
    """
    out = [f"ip:{source or 'unknown'}"]
    if secret:
        out.append(f"key:{secret[:KEY_PREFIX_LEN]}" if secret.startswith("ph-") else "admin_key")
    return out


@dataclass(slots=True)
class _Strikes:
    failures: int
    last: float
    until: float


def next_strikes(state: _Strikes | None, now: float, cfg: AuthThrottleConfig) -> _Strikes:
    """One more failure: the reference rule the Redis script implements too."""
    if state is None or (now - state.last > cfg.window_s and now >= state.until):
        state = _Strikes(0, now, 0.0)
    state.failures += 1
    state.last = now
    over = state.failures - cfg.max_failures
    if over > 0:
        backoff = min(cfg.backoff_base_s * 2.0 ** min(over - 1, MAX_EXPONENT), cfg.backoff_max_s)
        state.until = max(state.until, now + backoff)
    return state


class ThrottleBackend(Protocol):
    async def failed(self, ids: Sequence[str]) -> float:
        """Count one failure against each id; seconds the worst of them is blocked (0 = none)."""
        ...


class MemoryThrottle:
    """Per-process counts, bounded in number (the oldest identities are forgotten)."""

    def __init__(
        self,
        cfg: AuthThrottleConfig,
        clock: Callable[[], float] = time.monotonic,
        max_ids: int = 100_000,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.max_ids = max_ids
        self._strikes: OrderedDict[str, _Strikes] = OrderedDict()

    async def failed(self, ids: Sequence[str]) -> float:
        now = self.clock()
        wait = 0.0
        for ident in ids:
            state = next_strikes(self._strikes.get(ident), now, self.cfg)
            self._strikes[ident] = state
            self._strikes.move_to_end(ident)
            wait = max(wait, state.until - now)
        while len(self._strikes) > self.max_ids:
            self._strikes.popitem(last=False)
        return wait


_FAILED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local base = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local wait = 0
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'n', 'last', 'until')
  local n = tonumber(v[1]) or 0
  local last = tonumber(v[2]) or now
  local till = tonumber(v[3]) or 0
  if now - last > window and now >= till then n = 0; till = 0 end
  n = n + 1
  if n > limit then
    local backoff = math.min(base * 2 ^ math.min(n - limit - 1, 30), cap)
    till = math.max(till, now + backoff)
  end
  redis.call('HSET', KEYS[i], 'n', n, 'last', tostring(now), 'until', tostring(till))
  local keep = math.max(window, till - now) + 1
  redis.call('PEXPIRE', KEYS[i], math.ceil(keep * 1000))
  if till - now > wait then wait = till - now end
end
return tostring(wait)
"""


class RedisThrottle:
    """The same rule in one atomic script, shared by every replica."""

    def __init__(self, redis: Redis, prefix: str, cfg: AuthThrottleConfig) -> None:
        self.cfg = cfg
        self.prefix = prefix + "authfail:"
        self._failed = redis.register_script(_FAILED)

    async def failed(self, ids: Sequence[str]) -> float:
        cfg = self.cfg
        args = [cfg.window_s, cfg.max_failures, cfg.backoff_base_s, cfg.backoff_max_s]
        result = await self._failed(keys=[self.prefix + i for i in ids], args=args)
        wait = float(result)
        return wait if math.isfinite(wait) else 0.0


class AuthThrottle:
    """The gateway's one failed-authentication throttle (both backends, fail open)."""

    def __init__(self, cfg: AuthThrottleConfig, backend: ThrottleBackend) -> None:
        self.cfg = cfg
        self.backend = backend
        self._warned: OrderedDict[str, float] = OrderedDict()

    async def failure(self, source: str | None, secret: str | None) -> float:
        """Record a failed attempt; seconds to refuse further failures for (0: answer 401)."""
        if not self.cfg.enabled:
            return 0.0
        ids = identities(source, secret)
        try:
            wait = await self.backend.failed(ids)
        except (RedisError, OSError, TimeoutError) as exc:
            # A throttle outage must not turn a wrong key into a 500: plain 401s meanwhile.
            log.warning("auth throttle unavailable (%s); failures are not counted", exc)
            return 0.0
        if wait > 0:
            self._warn(ids, wait)
        return wait

    def _warn(self, ids: list[str], wait: float) -> None:
        """One log line per throttled source and window, not one per refused attempt."""
        now = time.monotonic()
        key = ids[0]
        if now - self._warned.get(key, -math.inf) < self.cfg.window_s:
            return
        self._warned[key] = now
        while len(self._warned) > 10_000:
            self._warned.popitem(last=False)
        log.warning("failed authentication throttled for %.0fs: %s", wait, ", ".join(ids))
