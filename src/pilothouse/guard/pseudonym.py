"""Consistent, reversible pseudonyms: the upstream sees surrogates, the client its own data.

A surrogate is derived with HMAC-SHA256 from a per-deployment secret, the
conversation and the value, so the same value maps to the same surrogate in
every turn of a conversation (and on every replica sharing the secret) while
different conversations cannot be linked. The surrogate → original mapping
lives only in memory or in Redis under a TTL, never in the store.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any, Protocol

_FIRST = ("Alex", "Sam", "Robin", "Jordan", "Casey", "Morgan", "Taylor", "Jamie")
_LAST = ("Quill", "Marsh", "Vale", "Thorne", "Brook", "Hale", "Stone", "Reed")


def _digest(secret: bytes, conversation: str, entity: str, value: str) -> bytes:
    msg = f"{conversation}\0{entity}\0{value}".encode()
    return hmac.new(secret, msg, hashlib.sha256).digest()


def surrogate(secret: bytes, conversation: str, entity: str, value: str) -> str:
    d = _digest(secret, conversation, entity, value)
    h = d[:4].hex()
    n = int.from_bytes(d[4:8], "big")
    if entity == "EMAIL_ADDRESS":
        return f"user.{h}@example.com"
    if entity == "PHONE_NUMBER":
        return f"+1-555-01{n % 100:02d}-{n // 100 % 10000:04d}"
    if entity == "PERSON":
        return f"{_FIRST[n % 8]} {_LAST[n // 8 % 8]}-{h[:4]}"
    if entity == "IP_ADDRESS":
        return f"198.51.{n % 256}.{n // 256 % 254 + 1}"
    return f"{entity}_{h}"


class MappingStore(Protocol):
    async def save(self, conversation: str, mapping: dict[str, str]) -> None: ...
    async def load(self, conversation: str) -> dict[str, str]: ...
    async def forget(self, conversation: str | None = None) -> int: ...


class MemoryMappingStore:
    """Per-process mappings with a TTL, bounded in size (oldest conversations go first)."""

    def __init__(self, ttl_s: float, max_conversations: int = 10_000) -> None:
        self.ttl_s, self.max = ttl_s, max_conversations
        self._data: dict[str, tuple[float, dict[str, str]]] = {}

    label = "pseudonym_mappings_memory"

    def erase_values(self, values: list[str], *, delete: bool = True) -> int:
        """Drop (or count) conversations whose mapping holds a value the subject sent (an
        original that occurs in one of their erased texts, or one of those texts)."""
        hits = [c for c, (_exp, m) in self._data.items()
                if any(orig in v or v in orig for orig in m.values() for v in values)]  # fmt: skip
        if delete:
            for c in hits:
                del self._data[c]
        return len(hits)

    async def save(self, conversation: str, mapping: dict[str, str]) -> None:
        if not mapping:
            return
        _, old = self._data.pop(conversation, (0.0, {}))
        self._data[conversation] = (time.monotonic() + self.ttl_s, {**old, **mapping})
        while len(self._data) > self.max:
            self._data.pop(next(iter(self._data)))

    async def load(self, conversation: str) -> dict[str, str]:
        entry = self._data.get(conversation)
        if entry is None:
            return {}
        if entry[0] < time.monotonic():
            self._data.pop(conversation, None)
            return {}
        return dict(entry[1])

    async def forget(self, conversation: str | None = None) -> int:
        if conversation is None:
            n = len(self._data)
            self._data.clear()
            return n
        return 1 if self._data.pop(conversation, None) is not None else 0


class RedisMappingStore:
    """One Redis hash per conversation (surrogate → original) with an expiry."""

    def __init__(self, redis: Any, prefix: str, ttl_s: float) -> None:
        self.redis, self.prefix, self.ttl = redis, prefix + "guard:pseudo:", max(1, int(ttl_s))

    async def save(self, conversation: str, mapping: dict[str, str]) -> None:
        if not mapping:
            return
        key = self.prefix + conversation
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, self.ttl)
            await pipe.execute()

    async def load(self, conversation: str) -> dict[str, str]:
        raw = await self.redis.hgetall(self.prefix + conversation)
        return {_s(k): _s(v) for k, v in raw.items()}

    async def forget(self, conversation: str | None = None) -> int:
        if conversation is not None:
            return int(await self.redis.delete(self.prefix + conversation))
        n = 0
        async for key in self.redis.scan_iter(match=self.prefix + "*"):
            n += int(await self.redis.delete(key))
        return n


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
