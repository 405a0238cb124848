"""Migration 0014: the semantic cache columns on usage records, up and down."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect

from pilothouse.store.db import _alembic_config, create_engine, migrate

pytestmark = pytest.mark.integration
COLUMNS = {"cache_kind", "cache_tokens_saved"}
MIGRATION = importlib.import_module("pilothouse.store.migrations.versions.0014_semantic_cache")


def _columns(connection: Any) -> set[str]:
    return {c["name"] for c in inspect(connection).get_columns("usage_records")}


async def _round_trip(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            assert await conn.run_sync(_columns) >= COLUMNS
            previous = MIGRATION.down_revision
            await conn.run_sync(lambda c: command.downgrade(_alembic_config(c), previous))
            assert not COLUMNS & await conn.run_sync(_columns)
        await migrate(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_columns) >= COLUMNS
    finally:
        await engine.dispose()


def test_migration_0014_upgrades_and_downgrades(store_url: str) -> None:
    asyncio.run(_round_trip(store_url))
