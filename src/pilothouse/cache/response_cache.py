"""Exact-match response cache, in memory (LRU + TTL) or in Redis (shared by replicas).

The key is a hash of the alias and every request field that can change the
answer, so two requests share an entry only if an upstream would see the same
request. ``stream`` is excluded: a cached completion can be replayed as SSE.
The gateway also passes the route version and the prompt version served, so a
change of the alias's targets or a label move (even to identical text) starts
new entries instead of serving the old model's or version's answer.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis

_IGNORED = frozenset({"stream", "stream_options", "user"})


def cache_key(
    alias: str,
    request: dict[str, Any],
    *,
    route_version: str | None = None,
    prompt: Mapping[str, Any] | None = None,
    scope: str | None = None,
    native: Mapping[str, Any] | None = None,
) -> str:
    """``native``: endpoint-only fields (legacy completions', Responses') that reach a
    native upstream beside the chat request and so change the answer too."""
    material: dict[str, Any] = {k: v for k, v in request.items() if k not in _IGNORED}
    material["model"] = alias
    if route_version is not None or prompt or scope is not None or native:
        prompt_version = [prompt.get("name"), prompt.get("version")] if prompt else None
        material = {"request": material, "route": route_version, "prompt": prompt_version}
        if scope is not None:  # a semantic alias's scope (key/team/global, inside a tenant)
            material["scope"] = scope
        if native:
            material["native"] = dict(native)
    digest = hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"{alias}:{digest}"


class ResponseCache(Protocol):
    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def set(self, key: str, value: dict[str, Any], ttl_s: float) -> None: ...

    async def delete(self, key: str) -> bool: ...


class MemoryResponseCache:
    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> dict[str, Any] | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, blob = item
        if expires <= self.clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        value: dict[str, Any] = orjson.loads(blob)
        return value

    async def set(self, key: str, value: dict[str, Any], ttl_s: float) -> None:
        self._data[key] = (self.clock() + ttl_s, orjson.dumps(value))
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    async def delete(self, key: str) -> bool:
        return self._data.pop(key, None) is not None

    label = "response_cache_memory"

    def erase_values(self, values: list[str], *, delete: bool = True) -> int:
        """Drop (or count) cached answers holding any erased value (privacy erasure)."""
        needles = [orjson.dumps(v)[1:-1] for v in values]
        hits = [k for k, (_exp, blob) in self._data.items() if any(n in blob for n in needles)]
        if delete:
            for k in hits:
                del self._data[k]
        return len(hits)


class RedisResponseCache:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix + "cache:"

    async def get(self, key: str) -> dict[str, Any] | None:
        blob = await self.redis.get(self.prefix + key)
        if blob is None:
            return None
        value: dict[str, Any] = orjson.loads(blob)
        return value

    async def set(self, key: str, value: dict[str, Any], ttl_s: float) -> None:
        await self.redis.set(self.prefix + key, orjson.dumps(value), px=max(int(ttl_s * 1000), 1))

    async def delete(self, key: str) -> bool:
        return bool(await self.redis.delete(self.prefix + key))
