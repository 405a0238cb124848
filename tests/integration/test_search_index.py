"""SQLite's search index is fed from a queue (migration 0018): what the trace writer stores is
searchable when its batch commits, traces inserted any other way are found at the next search,
nothing is indexed twice, and downgrading keeps everything queued searchable."""

from __future__ import annotations

import asyncio
import importlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.config.schema import TelemetryConfig
from pilothouse.store import search_index
from pilothouse.store.db import _alembic_config, create_engine, migrate
from pilothouse.store.tables import traces
from pilothouse.telemetry.recorder import TraceRecorder
from tests.integration.test_writer_throughput import finished_request

pytestmark = pytest.mark.integration
QUEUE = importlib.import_module("pilothouse.store.migrations.versions.0018_search_index_queue")
NOW = datetime.now(UTC).replace(microsecond=0)


def _trace(n: int, prompt: str | None) -> dict[str, Any]:
    content = None if prompt is None else {"request": {"messages": [{"content": prompt}]}}
    return {
        "trace_id": f"{n:032x}", "request_id": f"req_{n}", "created_at": NOW, "attempts": 1,
        "input_tokens": 0, "output_tokens": 0, "cost_pico": 0, "cache_hit": False,
        "content": content,
    }  # fmt: skip


async def _scalar(engine: AsyncEngine, sql: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql))).scalar_one()


async def _matches(engine: AsyncEngine, word: str) -> list[str]:
    """Request ids whose indexed content has ``word``, after the console's catch-up."""
    await search_index.catch_up(engine)
    sql = (
        "SELECT r.request_id FROM trace_search_rows AS r WHERE r.id IN "
        "(SELECT rowid FROM trace_search WHERE trace_search MATCH :w) ORDER BY r.request_id"
    )
    async with engine.connect() as conn:
        return [row[0] for row in await conn.execute(text(sql), {"w": f'"{word}"'})]


async def _fresh(tmp_path: Path) -> AsyncEngine:
    engine = create_engine(f"sqlite:///{tmp_path}/search.db")
    await migrate(engine)
    return engine


def test_the_trace_writer_leaves_nothing_queued(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = await _fresh(tmp_path)
        try:
            config = TelemetryConfig(capture_content="full")
            recorder = TraceRecorder(engine, config, spool_path=tmp_path / "spool.jsonl")
            for n in range(150):  # more than one batch
                recorder.record(finished_request(n))
            await recorder.start()
            await recorder.flush()
            await recorder.stop()
            assert recorder.written == 150
            # Indexed inside the writer's own transaction: the queue is already empty,
            # before any search ran its catch-up.
            assert await _scalar(engine, "SELECT count(*) FROM trace_search_pending") == 0
            assert await _scalar(engine, "SELECT count(*) FROM trace_search") == 150
            assert await _matches(engine, "hi") == sorted(f"req_wtp{n:06d}" for n in range(150))
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_direct_inserts_are_found_once_and_erasure_still_removes_them(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = await _fresh(tmp_path)
        try:
            async with engine.begin() as conn:
                await conn.execute(insert(traces), [_trace(1, "a ripe mango"), _trace(2, None)])
            # Queued by the trigger (capture off stores no content, so nothing to queue).
            assert await _scalar(engine, "SELECT count(*) FROM trace_search_pending") == 1
            assert await _matches(engine, "mango") == ["req_1"]
            assert await _scalar(engine, "SELECT count(*) FROM trace_search_pending") == 0

            # Indexing the same trace again (queued twice, or already indexed by the
            # update trigger) never makes a second entry.
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO trace_search_pending VALUES (:t)"), [
                    {"t": f"{1:032x}"}, {"t": f"{1:032x}"},
                ])  # fmt: skip
                await search_index.index_pending(conn)
            assert await _scalar(engine, "SELECT count(*) FROM trace_search") == 1
            assert await _scalar(engine, "SELECT count(*) FROM trace_search_rows") == 1

            # Deleted and stored again before the queue was indexed: queued twice, one entry.
            async with engine.begin() as conn:
                await conn.execute(insert(traces), [_trace(4, "a mango again")])
                await conn.execute(traces.delete().where(traces.c.trace_id == f"{4:032x}"))
                await conn.execute(insert(traces), [_trace(4, "a mango again")])
            assert await _scalar(engine, "SELECT count(*) FROM trace_search_pending") == 2
            assert await _matches(engine, "again") == ["req_4"]
            assert await _scalar(engine, "SELECT count(*) FROM trace_search") == 2

            # A trace erased before it was indexed is never indexed.
            async with engine.begin() as conn:
                await conn.execute(insert(traces), [_trace(3, "a green mango")])
                await conn.execute(traces.delete().where(traces.c.trace_id == f"{3:032x}"))
            assert await _matches(engine, "mango") == ["req_1", "req_4"]
            assert await _scalar(engine, "SELECT count(*) FROM trace_search_pending") == 0

            # 0017's update trigger still drops erased content from the index.
            async with engine.begin() as conn:
                await conn.execute(
                    traces.update().where(traces.c.trace_id == f"{1:032x}").values(content=None)
                )
            assert await _matches(engine, "mango") == ["req_4"]
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_downgrading_indexes_the_queue_and_restores_the_per_row_trigger(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = await _fresh(tmp_path)
        try:
            async with engine.begin() as conn:
                await conn.execute(insert(traces), [_trace(1, "queued papaya")])
                await conn.run_sync(
                    lambda c: command.downgrade(_alembic_config(c), QUEUE.down_revision)
                )
            async with engine.connect() as conn:
                tables = await conn.execute(
                    select(func.count())
                    .select_from(text("sqlite_master"))
                    .where(text("name = 'trace_search_pending'"))
                )
                assert tables.scalar_one() == 0
            async with engine.begin() as conn:  # 0017's trigger indexes row by row again
                await conn.execute(insert(traces), [_trace(2, "direct papaya")])
            sql = "SELECT count(*) FROM trace_search WHERE trace_search MATCH 'papaya'"
            assert await _scalar(engine, sql) == 2
            await migrate(engine)  # and back up: new traces are queued again
            async with engine.begin() as conn:
                await conn.execute(insert(traces), [_trace(3, "late papaya")])
            assert await _matches(engine, "papaya") == ["req_1", "req_2", "req_3"]
        finally:
            await engine.dispose()

    asyncio.run(scenario())
