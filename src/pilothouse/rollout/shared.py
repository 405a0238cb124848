"""Arm counters shared by every replica: Redis hashes when configured, the store otherwise.

Each replica adds its deltas in batches (:meth:`add`) from a background task,
never per request; readers get the cluster totals. Redis ``HINCRBYFLOAT``
and the store's ``INSERT … ON CONFLICT DO UPDATE value = value + delta``
are both atomic, so concurrent replicas never lose an increment, and both
outlive a gateway restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.rollout.tables import rollout_stats

Deltas = Mapping[tuple[str, str], Mapping[str, float]]  # (rollout id, arm) → field → delta
Totals = dict[str, dict[str, float]]  # arm → field → total


class ArmCounters(Protocol):
    async def add(self, deltas: Deltas) -> None: ...

    async def read(self, rollout_id: str) -> Totals: ...


class RedisArmCounters:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix + "rollout:"

    def _key(self, rollout_id: str, arm: str) -> str:
        return f"{self.prefix}{rollout_id}:{arm}"

    async def add(self, deltas: Deltas) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for (rollout_id, arm), fields in deltas.items():
                for name, value in fields.items():
                    pipe.hincrbyfloat(self._key(rollout_id, arm), name, value)
            await pipe.execute()

    async def read(self, rollout_id: str) -> Totals:
        out: Totals = {}
        for arm in ("baseline", "candidate"):
            raw = await self.redis.hgetall(self._key(rollout_id, arm))  # type: ignore[misc]
            out[arm] = {_s(k): float(v) for k, v in raw.items()}
        return out


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class StoreArmCounters:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(self, deltas: Deltas) -> None:
        rows = [
            {"rollout_id": rid, "arm": arm, "field": name, "value": value}
            for (rid, arm), fields in deltas.items()
            for name, value in fields.items()
        ]
        if not rows:
            return
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(rollout_stats)
        stmt = stmt.on_conflict_do_update(
            index_elements=["rollout_id", "arm", "field"],
            set_={"value": rollout_stats.c.value + stmt.excluded.value},
        )
        async with self.engine.begin() as conn:
            for row in rows:  # one statement per row: ON CONFLICT in executemany differs by driver
                await conn.execute(stmt, row)

    async def read(self, rollout_id: str) -> Totals:
        out: Totals = {"baseline": {}, "candidate": {}}
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(rollout_stats).where(rollout_stats.c.rollout_id == rollout_id)
            )
            for r in rows:
                out.setdefault(r.arm, {})[r.field] = float(r.value)
        return out
