"""Migration 0012 (teams and users) upgrades, downgrades and upgrades again on both stores."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from pilothouse.store.db import _alembic_config, create_engine, migrate

pytestmark = pytest.mark.integration


def _columns(connection: Connection) -> dict[str, Any]:
    insp = inspect(connection)
    tables = set(insp.get_table_names())
    return {
        "tables": {"teams", "users"} & tables,
        "keys": {c["name"] for c in insp.get_columns("api_keys")} & {"team_id", "user_id"},
        "usage": {c["name"] for c in insp.get_columns("usage_records")} & {"team_id", "user_id"},
    }


def _downgrade_0012(connection: Connection) -> None:
    config = _alembic_config(connection)
    previous = ScriptDirectory.from_config(config).get_revision("0012_teams_users").down_revision
    assert isinstance(previous, str)
    command.downgrade(config, previous)


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
            await conn.run_sync(_downgrade_0012)
        async with engine.connect() as conn:
            assert await conn.run_sync(_columns) == {"tables": set(), "keys": set(), "usage": set()}
        await migrate(engine)
        async with engine.connect() as conn:
            assert (await conn.run_sync(_columns))["tables"] == {"teams", "users"}
    finally:
        await engine.dispose()
