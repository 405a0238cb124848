"""The writers keep up: a trace backlog drains batch after batch; raw inserts store the same."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.config.schema import TelemetryConfig
from pilothouse.gateway.context import Attempt, RequestContext
from pilothouse.providers.base import Usage
from pilothouse.store.db import create_engine, migrate
from pilothouse.store.raw_insert import RawInsert
from pilothouse.store.tables import spans, traces, usage_records
from pilothouse.telemetry.recorder import TRACES_PER_BATCH, TraceRecorder
from pilothouse.telemetry.tracecontext import new_trace_id

pytestmark = pytest.mark.integration
PREFIX = "wtp"


@pytest.fixture
async def engine(store_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(store_url)
    await migrate(eng)
    async with eng.begin() as conn:
        await conn.execute(delete(usage_records).where(usage_records.c.id.like(f"{PREFIX}%")))
        await conn.execute(delete(traces).where(traces.c.request_id.like(f"req_{PREFIX}%")))
    yield eng
    await eng.dispose()


def finished_request(n: int) -> RequestContext:
    started = time.perf_counter()
    ctx = RequestContext(request_id=f"req_{PREFIX}{n:06d}", endpoint="chat", started=started)
    ctx.trace_id = new_trace_id()
    ctx.alias, ctx.provider, ctx.upstream_model = "chat", "mock", "gpt-4o-mini"
    ctx.usage = Usage(input_tokens=7, output_tokens=3)
    ctx.request_body = {"model": "chat", "messages": [{"role": "user", "content": f"hi {n}"}]}
    ctx.response_body = {"id": f"r{n}", "choices": [{"finish_reason": "stop"}]}
    ctx.attempts.append(Attempt("mock", "gpt-4o-mini", "ok", 0.001, status=200, started=started))
    return ctx


async def count(engine: AsyncEngine, table: Any, where: Any) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(table).where(where)
        return int((await conn.execute(query)).scalar_one())


async def test_a_trace_backlog_drains_batch_after_batch(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """With an hour-long batch window, 1,000 queued traces are still written at once.

    The writer used to sleep the whole window after every batch (at most 500
    spans), so it kept up with only a few hundred traces a second and the
    queue grew for as long as the load lasted.
    """
    config = TelemetryConfig(flush_interval_s=3600.0, capture_content="redacted")
    recorder = TraceRecorder(engine, config, spool_path=tmp_path / "spool.traces.jsonl")
    queued = 1000
    for n in range(queued):
        recorder.record(finished_request(n))
    await recorder.start()
    try:
        async with asyncio.timeout(120):  # far below the window the old writer slept
            while (
                recorder.queue.qsize() >= TRACES_PER_BATCH
                or recorder.written + recorder.queue.qsize() < queued  # a batch is in flight
            ):
                await asyncio.sleep(0.01)
        # Only the last, partial batch may still wait for the window.
        written = await count(engine, traces, traces.c.request_id.like(f"req_{PREFIX}%"))
        assert written >= queued - TRACES_PER_BATCH
        assert written + recorder.queue.qsize() == queued
        rows = await count(engine, spans, spans.c.trace_id.in_(select(traces.c.trace_id)))
        assert rows >= 2 * written  # the server span and the attempt of each
    finally:
        await recorder.stop()
    assert await count(engine, traces, traces.c.request_id.like(f"req_{PREFIX}%")) == queued


def usage(n: int, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": f"{PREFIX}{n:020d}",
        "request_id": f"req_{PREFIX}{n}",
        "created_at": datetime.now(UTC),
        "endpoint": "chat",
        "alias": "chat",
        "stream": True,
        "status": 200,
        "cost_pico": 10**15,
        "latency_ms": 1.5,
        "metadata": {"user": "é", "tags": [1, 2]},
        "route_steps": None,
    }
    row.update(extra)
    return row


async def test_raw_insert_stores_what_sqlalchemy_stored(engine: AsyncEngine) -> None:
    """Same values back, defaults for missing keys, JSON and NULL alike; conflicts ignored."""
    insert = (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(
        usage_records
    ).on_conflict_do_nothing(index_elements=["id"])
    raw = RawInsert(usage_records, engine.dialect, ["id"])
    pairs: list[tuple[int, int, dict[str, Any]]] = [
        (0, 1, {}),
        (2, 3, {"metadata": None}),
        (4, 5, {"key_id": "key_x", "ttft_ms": 0.25}),
    ]
    async with engine.begin() as conn:
        for via_sa, via_raw, extra in pairs:
            await conn.execute(insert, [usage(via_sa, **extra)])
            await raw.execute(conn, [usage(via_raw, **extra), usage(via_raw, status=500)])
    async with engine.connect() as conn:
        result = await conn.execute(
            select(usage_records).where(usage_records.c.id.like(f"{PREFIX}%")).order_by("id")
        )
        stored = {row["id"]: dict(row) for row in result.mappings()}
    assert len(stored) == 6
    for via_sa, via_raw, _extra in pairs:
        a, b = stored[f"{PREFIX}{via_sa:020d}"], stored[f"{PREFIX}{via_raw:020d}"]
        differ = {k for k in a if k not in ("id", "request_id", "created_at") and a[k] != b[k]}
        assert not differ, {k: (a[k], b[k]) for k in differ}
        assert b["status"] == 200  # the second row with the same id was ignored
        assert b["attempts"] == 0 and b["cache_hit"] is False  # column defaults
        assert abs((a["created_at"] - b["created_at"]).total_seconds()) < 60


def test_raw_insert_refuses_a_table_it_cannot_copy_faithfully() -> None:
    from sqlalchemy import Column, DateTime, MetaData, String, Table, text

    table = Table(
        "t",
        MetaData(),
        Column("id", String, primary_key=True),
        Column("at", DateTime, server_default=text("CURRENT_TIMESTAMP")),
    )
    with pytest.raises(ValueError, match=r"t\.at: only scalar defaults"):
        RawInsert(table, sqlite.dialect(), ["id"])
