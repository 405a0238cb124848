"""Migration 0009 and the rollout store on SQLite and PostgreSQL; counters on store and Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from pilothouse.errors import ConflictError
from pilothouse.rollout.config import RolloutDefaults
from pilothouse.rollout.shared import RedisArmCounters, StoreArmCounters
from pilothouse.rollout.store import RolloutStore, parse_request
from pilothouse.store.db import create_engine, migrate
from tests.support.migrations import columns, downgrade_past, table_names

pytestmark = pytest.mark.integration


async def _migrations(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            assert {"rollout_id", "rollout_arm"} <= await conn.run_sync(columns, "usage_records")
            assert {"rollout_id", "rollout_arm"} <= await conn.run_sync(columns, "traces")
            await conn.run_sync(downgrade_past, "0009_rollouts")
            assert "rollout_id" not in await conn.run_sync(columns, "usage_records")
            tables = await conn.run_sync(table_names)
            assert "rollouts" not in tables and "rollout_stats" not in tables
        await migrate(engine)
        async with engine.connect() as conn:
            tables = await conn.run_sync(table_names)
            assert {"rollouts", "rollout_stats", "rollout_marks"} <= tables
    finally:
        await engine.dispose()


def test_migration_0009_upgrades_and_downgrades(store_url: str) -> None:
    asyncio.run(_migrations(store_url))


async def _store(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
        store = RolloutStore(engine)
        values = parse_request(
            {"alias": "chat", "candidate_alias": "chat-next", "percent": 10},
            RolloutDefaults(),
        )
        first = await store.create(values, actor="alice", reason="try")
        with pytest.raises(ConflictError):
            await store.create(values, actor="bob", reason=None)
        # Two replicas roll back at once: exactly one wins.
        wins = await asyncio.gather(
            *(store.end(first.id, "rolled_back", actor=f"r{i}", reason="guard") for i in range(4))
        )
        assert sorted(wins) == [False, False, False, True]
        again = await store.create(values, actor="alice", reason="second try")
        assert again.id != first.id and (await store.running_for("chat")) == again
        assert await store.mark_once(again.id, "guard:x", {"tau": 1}) == {"tau": 1}
        assert await store.mark_once(again.id, "guard:x", {"tau": 2}) == {"tau": 1}
        counters = StoreArmCounters(engine)
        await asyncio.gather(
            *(counters.add({(again.id, "candidate"): {"n": 1.0, "err": 0.5}}) for _ in range(10))
        )
        totals = await counters.read(again.id)
        assert totals["candidate"] == {"n": 10.0, "err": 5.0} and totals["baseline"] == {}
    finally:
        await engine.dispose()


def test_store_enforces_one_running_rollout_and_one_rollback(store_url: str) -> None:
    asyncio.run(_store(store_url))


async def _redis(url: str, prefix: str) -> None:
    redis = Redis.from_url(url)
    try:
        counters = RedisArmCounters(redis, prefix)
        await asyncio.gather(
            *(counters.add({("ro_1", "baseline"): {"n": 1.0, "lat.3": 1.0}}) for _ in range(10))
        )
        assert (await counters.read("ro_1"))["baseline"] == {"n": 10.0, "lat.3": 10.0}
        fresh = RedisArmCounters(Redis.from_url(url), prefix)  # another replica, or a restart
        assert (await fresh.read("ro_1"))["baseline"]["n"] == 10.0
        await fresh.redis.aclose()
    finally:
        await redis.aclose()


def test_redis_counters_are_shared_and_outlive_the_process(
    redis_url: str, redis_prefix: str
) -> None:
    asyncio.run(_redis(redis_url, redis_prefix))
