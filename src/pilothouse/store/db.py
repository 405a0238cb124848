"""The async engine for SQLite or PostgreSQL, and Alembic migrations run in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pilothouse.errors import StoreError

MIGRATIONS = Path(__file__).with_name("migrations")


def async_url(url: str) -> str:
    """Map a user-facing URL to its async driver (``sqlite://`` → aiosqlite, etc.)."""
    for plain, driver in (
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    if url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        return url
    raise StoreError(f"unsupported store url {redact_url(url)!r}: use sqlite:/// or postgresql://")


def redact_url(url: str) -> str:
    """Hide a password in a database URL before it reaches a log or error."""
    head, sep, tail = url.partition("://")
    if not sep or "@" not in tail:
        return url
    creds, _, host = tail.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{head}://{user}:***@{host}" if ":" in creds else url


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engine(url: str) -> AsyncEngine:
    """Async engine; JSON columns go through orjson (the ledger and trace writers are hot)."""
    full = async_url(url)
    kwargs: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if full.startswith("postgresql"):
        kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
    return create_async_engine(full, **kwargs)


def _alembic_config(connection: Connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    command.upgrade(_alembic_config(connection), "heads")


def _pending(connection: Connection) -> list[str]:
    script = ScriptDirectory.from_config(_alembic_config(connection))
    current = set(MigrationContext.configure(connection).get_current_heads())
    heads = set(script.get_heads())
    if current == heads:
        return []
    return sorted(heads - current) or ["(diverged)"]


async def migrate(engine: AsyncEngine) -> None:
    """Apply every pending migration (idempotent)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


async def pending_migrations(engine: AsyncEngine) -> list[str]:
    """Heads not yet applied; empty when the schema is current."""
    async with engine.connect() as conn:
        return await conn.run_sync(_pending)
