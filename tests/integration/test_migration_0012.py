"""Migration 0012 (teams and users) upgrades, downgrades and upgrades again on both stores."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Connection

from pilothouse.store.db import create_engine, migrate
from tests.support.migrations import columns, downgrade_past, table_names

pytestmark = pytest.mark.integration


def _columns(connection: Connection) -> dict[str, Any]:
    return {
        "tables": {"teams", "users"} & table_names(connection),
        "keys": columns(connection, "api_keys") & {"team_id", "user_id"},
        "usage": columns(connection, "usage_records") & {"team_id", "user_id"},
    }


async def test_upgrade_downgrade_upgrade(store_url: str) -> None:
    engine = create_engine(store_url)
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_columns) == {
                "tables": {"teams", "users"},
                "keys": {"team_id", "user_id"},
                "usage": {"team_id", "user_id"},
            }
        async with engine.begin() as conn:
            await conn.run_sync(downgrade_past, "0012_teams_users")
        async with engine.connect() as conn:
            assert await conn.run_sync(_columns) == {"tables": set(), "keys": set(), "usage": set()}
        await migrate(engine)
        async with engine.connect() as conn:
            assert (await conn.run_sync(_columns))["tables"] == {"teams", "users"}
    finally:
        await engine.dispose()
