"""Alerts sent once across replicas: Redis is the arbiter of what was last sent.

Every replica evaluates its own alert rules (SLO burn, spend anomaly, budget
thresholds…) and would send the same message. Before delivering, a replica
claims the transition ``fingerprint → status`` with one atomic script: the
claim succeeds only if the cluster's last sent status for that fingerprint
differs, so a firing is sent once, its resolution once, and a later re-fire
once again. The state expires after ``ttl_s`` so a forgotten condition cannot
silence a new one forever.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from pilothouse.telemetry.alerts import Alert

_CLAIM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
# Undo a claim whose delivery failed, unless another replica has moved the state on.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""
DEFAULT_TTL_S = 7 * 24 * 3600


class RedisAlertClaims:
    def __init__(self, redis: Redis, prefix: str, ttl_s: int = DEFAULT_TTL_S) -> None:
        self._redis = redis
        self._prefix = prefix + "alert:"
        self._ttl_s = ttl_s
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)

    def _key(self, alert: Alert) -> str:
        return self._prefix + alert.fingerprint

    async def claim(self, alert: Alert) -> bool:
        """True if this replica should send ``alert`` (no replica sent this transition)."""
        won = await self._claim(keys=[self._key(alert)], args=[alert.status, self._ttl_s])
        return bool(won)

    async def release(self, alert: Alert) -> None:
        await self._release(keys=[self._key(alert)], args=[alert.status])
