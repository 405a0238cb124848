"""The request log's guard filters on both stores: the same receipts select the same
requests on SQLite (JSON_EXTRACT) and PostgreSQL (->>), LIKE wildcards escaped on both."""

from __future__ import annotations

import asyncio

import pytest

from pilothouse.store.db import create_engine, migrate
from tests.unit.console.test_guard_receipts import matching, write

pytestmark = pytest.mark.integration


async def _check(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
        await write(engine)
        assert await matching(engine, guard="secrets", verdict="block") == {"r2"}
        assert await matching(engine, guard="pii", verdict="redact") == {"r3", "r5"}
        assert await matching(engine, guard="pii") == {"r1", "r3", "r5"}
        assert await matching(engine, verdict="acted") == {"r1", "r2", "r3", "r5"}
        assert await matching(engine, entity="US_SSN") == {"r3", "r5"}
        assert await matching(engine, entity="SSN") == set()
        assert await matching(engine, guard="internal%") == set()
        assert await matching(engine, verdict="redact", key="key_a") == {"r3", "r5"}
    finally:
        await engine.dispose()


def test_guard_filters_on_both_stores(store_url: str) -> None:
    asyncio.run(_check(store_url))
