"""Forced degraded mode per alias (``POST /admin/degrade``), shared across replicas.

The hot path reads one in-process set. With Redis configured the switch
lives in a Redis hash; a change is published so every replica reloads at
once, and the runtime's one-second poll reloads it too (a missed message
costs a second, never a stale switch for good). Without Redis it is this
process's alone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis

HASH = "routing:degraded"
CHANNEL = "routing:degrade"


class DegradeSwitch:
    def __init__(self, redis: Redis | None, prefix: str) -> None:
        self.redis = redis
        self.key = prefix + HASH
        self.channel = prefix + CHANNEL
        self.forced: dict[str, dict[str, Any]] = {}  # alias -> {by, at}

    def is_forced(self, alias: str | None) -> bool:
        return alias is not None and alias in self.forced

    async def set(self, alias: str, on: bool, actor: str) -> None:
        if on:
            entry = {"by": actor, "at": datetime.now(UTC).isoformat()}
            self.forced[alias] = entry
            if self.redis is not None:
                await self.redis.hset(self.key, alias, orjson.dumps(entry).decode())  # type: ignore[misc]
        else:
            self.forced.pop(alias, None)
            if self.redis is not None:
                await self.redis.hdel(self.key, alias)  # type: ignore[misc]
        if self.redis is not None:
            await self.redis.publish(self.channel, alias)

    async def reload(self) -> None:
        """Replace the local view with Redis' (no-op without Redis)."""
        if self.redis is None:
            return
        raw = await self.redis.hgetall(self.key)  # type: ignore[misc]
        forced: dict[str, dict[str, Any]] = {}
        for alias, value in raw.items():
            name = alias.decode() if isinstance(alias, bytes) else str(alias)
            try:
                forced[name] = orjson.loads(value)
            except orjson.JSONDecodeError:
                forced[name] = {}
        self.forced = forced

    def public(self) -> list[dict[str, Any]]:
        return [{"alias": a, **v} for a, v in sorted(self.forced.items())]
