"""The pgvector store's first use: a caller during schema set-up waits for it, never a 500."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from pilothouse.rag.store_pg import PgRagStore

pytestmark = pytest.mark.integration


async def test_a_call_during_schema_setup_waits_for_the_schema(pgvector_server: Any) -> None:
    """The pool used to be published before CREATE TABLE ran: a second request got a 500."""
    name = "rag_open_race"
    pgvector_server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE);")
    pgvector_server.psql(f"CREATE DATABASE {name};")
    url = str(pgvector_server.get_uri(name))
    store = PgRagStore(url)
    holder = await asyncpg.connect(url)
    try:
        # Another replica is creating the schema: it holds the store's advisory lock.
        await holder.execute("SELECT pg_advisory_lock(7212)")
        first = asyncio.create_task(store.collection("a"))
        while not await holder.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ):
            await asyncio.sleep(0.01)  # until the first caller waits on that lock
        second = asyncio.create_task(store.collection("b"))
        # A premature query would fail within one round trip; a waiting caller stays pending.
        await asyncio.wait({second}, timeout=0.5)
        assert not second.done(), second
        await holder.execute("SELECT pg_advisory_unlock(7212)")
        assert await asyncio.gather(first, second) == [None, None]
    finally:
        await holder.close()
        await store.close()
        pgvector_server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE);")
