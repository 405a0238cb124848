"""Shared steps of the migration tests: read the schema, undo one revision, round-trip columns."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from pilothouse.store.db import _alembic_config, create_engine, migrate


def columns(connection: Connection, table: str) -> set[str]:
    """Column names of `table` as the database reports them."""
    return {c["name"] for c in inspect(connection).get_columns(table)}


def table_names(connection: Connection) -> set[str]:
    """Table names in the database as it stands."""
    return set(inspect(connection).get_table_names())


def downgrade_past(connection: Connection, revision: str) -> None:
    """Downgrade to the revision just before `revision`, i.e. undo that one migration."""
    config = _alembic_config(connection)
    previous = ScriptDirectory.from_config(config).get_revision(revision).down_revision
    assert isinstance(previous, str)
    command.downgrade(config, previous)


async def column_round_trip(url: str, revision: str, table: str, added: set[str]) -> None:
    """Upgrade, undo `revision` and upgrade again: `added` columns of `table` go and come back."""
    engine = create_engine(url)
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            assert await conn.run_sync(columns, table) >= added
            await conn.run_sync(downgrade_past, revision)
            assert not added & await conn.run_sync(columns, table)
        await migrate(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(columns, table) >= added
    finally:
        await engine.dispose()
