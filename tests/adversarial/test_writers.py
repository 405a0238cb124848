"""Issue 8 items 1, 5, 7: the usage and trace writers survive any single bad row.

Through real gateways on SQLite and PostgreSQL: a row the store or orjson
refuses is quarantined and counted and costs nothing else; a dead writer is
restarted and a dead one shows in /readyz; a torn spool never stops start-up;
traces survive a store outage in a bounded spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select
from ulid import ULID

from pilothouse.config.load import parse_settings
from pilothouse.store.db import create_engine
from pilothouse.store.tables import traces
from tests.support.gateway import ADMIN_KEY, ThreadedGateway, base_config
from tests.support.ledger import stored_rows, usage_rows

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
BODY = {"model": "chat", "messages": [{"role": "user", "content": "count me"}]}


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def usage_row(**over: Any) -> dict[str, Any]:
    """A usage row as the pipeline builds it (what a request would queue)."""
    ulid = str(ULID()).lower()
    row = {
        "id": ulid,
        "request_id": "req_" + ulid,
        "created_at": datetime.now(UTC),
        "key_id": None,
        "endpoint": "chat",
        "alias": "chat",
        "provider": "chaos",
        "upstream_model": "gpt-4o-mini",
        "stream": False,
        "attempts": 1,
        "status": 200,
        "error_type": None,
        "input_tokens": 7,
        "output_tokens": 3,
        "cached_input_tokens": 0,
        "estimated": False,
        "cost_pico": 1234,
        "latency_ms": 1.0,
        "ttft_ms": None,
        "cache_hit": False,
        "metadata": None,
    }
    row.update(over)
    return row


def on_loop(gw: ThreadedGateway, coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, gw.server_loop()).result(timeout=120)


def metric(gw: ThreadedGateway, line_start: str) -> float:
    text = httpx.get(gw.url + "/metrics", headers=ADMIN).text
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def stored_traces(store_url: str) -> dict[str, dict[str, Any]]:
    async def fetch() -> dict[str, dict[str, Any]]:
        engine = create_engine(store_url)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(select(traces))
                return {r.request_id: dict(r._mapping) for r in rows}
        finally:
            await engine.dispose()

    return asyncio.run(fetch())


WRITER_THREAD = {"on": False}


@pytest.fixture(params=["request-loop", "writer-thread"], autouse=True)
def writer_mode(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test here runs with the writers on the request loop and on their own thread."""
    WRITER_THREAD["on"] = request.param == "writer-thread"
    yield
    WRITER_THREAD["on"] = False


def gateway(store_url: str, tmp_path: Path, **extra: Any) -> ThreadedGateway:
    extra["store"] = {"writer_thread": WRITER_THREAD["on"], **extra.get("store", {})}
    return ThreadedGateway(parse_settings(base_config(store_url, tmp_path, **extra))).start()


def deep_header(depth: int, **extra: str) -> str:
    """A metadata header whose `user` is a list nested `depth` deep (orjson reads, cannot write)."""
    tail = "".join(f',"{k}":"{v}"' for k, v in extra.items())
    return '{"user":' + "[" * depth + '"x"' + "]" * depth + tail + "}"


def chat(gw: ThreadedGateway, key: str, metadata: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if metadata is not None:
        raw = metadata if isinstance(metadata, str) else orjson.dumps(metadata).decode()
        headers["x-pilothouse-metadata"] = raw
    return httpx.post(gw.url + "/v1/chat/completions", json=BODY, headers=headers, timeout=30)


def test_metadata_orjson_cannot_dump_costs_one_row_not_the_ledger(
    store_url: str, tmp_path: Path
) -> None:
    """Item 1: `user` nested 254 deep used to kill the writer; now later rows are all recorded."""
    gw = gateway(store_url, tmp_path)
    try:
        assert gw.runtime is not None
        key = gw.create_key()
        first = chat(gw, key)
        hostile = chat(gw, key, deep_header(254, team="red"))
        # The edge may refuse it (400); if it is accepted, it must be accounted.
        assert hostile.status_code in (200, 400), hostile.text
        # The same row reaching the writer directly (whatever the edge does).
        bad = usage_row(metadata={"user": nested(300), "team": "red"})
        gw.runtime.ledger.record(bad)
        later = [chat(gw, key) for _ in range(5)]
        assert all(r.status_code == 200 for r in [first, *later])
        ids = {r["request_id"]: r for r in usage_rows(gw)}
        for resp in [first, *later]:
            assert resp.headers["x-request-id"] in ids
        if hostile.status_code == 200:
            assert hostile.headers["x-request-id"] in ids
        # The bad row's money is kept, its metadata reduced and marked.
        salvaged = ids[bad["request_id"]]
        assert salvaged["cost_pico"] == 1234
        assert salvaged["metadata"]["team"] == "red"
        assert "pilothouse_quarantined" in salvaged["metadata"]
        ready = httpx.get(gw.url + "/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["usage_writer"] == "ok"
        assert metric(gw, 'pilothouse_rows_quarantined_total{queue="usage"}') >= 1
        quarantine = (tmp_path / "spool.quarantine.jsonl").read_text()
        assert bad["id"] in quarantine
    finally:
        gw.stop()


def test_drain_after_a_bad_row_loses_nothing(store_url: str, tmp_path: Path) -> None:
    """Item 1: shutdown (what SIGTERM runs) with a bad row queued writes every good row."""
    gw = gateway(store_url, tmp_path, store={"flush_interval_s": 5.0})
    assert gw.runtime is not None
    ledger = gw.runtime.ledger
    good = [usage_row() for _ in range(20)]
    bad = usage_row(metadata={"user": nested(300)})

    async def queue_all() -> None:
        for row in [*good[:10], bad, *good[10:]]:
            ledger.record(row)

    on_loop(gw, queue_all())
    gw.stop()
    assert not gw.thread.is_alive(), "shutdown must finish"
    ids = {r["request_id"] for r in stored_rows(gw.settings.store.url)}
    assert {r["request_id"] for r in good} <= ids
    assert bad["request_id"] in ids  # salvaged: its tokens and cost still count


def test_a_crashed_writer_restarts_and_a_dead_one_fails_readiness(tmp_path: Path) -> None:
    gw = gateway(f"sqlite:///{tmp_path}/ph.db", tmp_path)
    try:
        assert gw.runtime is not None
        ledger = gw.runtime.ledger
        key = gw.create_key()

        async def poison() -> None:  # an item no writer code path expects: a crash
            ledger.queue.put_nowait(object())  # type: ignore[arg-type]

        on_loop(gw, poison())
        after = [chat(gw, key) for _ in range(3)]
        ids = {r["request_id"] for r in usage_rows(gw)}
        assert {r.headers["x-request-id"] for r in after} <= ids
        assert metric(gw, 'pilothouse_writer_restarts_total{queue="usage"}') >= 1
        assert httpx.get(gw.url + "/readyz").status_code == 200

        async def kill() -> None:
            task = ledger.health.task
            assert task is not None
            task.cancel()
            with __import__("contextlib").suppress(asyncio.CancelledError):
                await task

        on_loop(gw, gw.runtime.writer.call(kill()))  # the writer task lives on the writer loop
        ready = httpx.get(gw.url + "/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["usage_writer"].startswith("dead")
    finally:
        gw.stop()


def _spooled(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def test_torn_spool_and_leftover_replaying_file_do_not_stop_startup(
    store_url: str, tmp_path: Path
) -> None:
    """Item 5: a half-written last line, garbage lines and a `.replaying` file are recovered."""
    spool = tmp_path / "spool.jsonl"
    replaying = tmp_path / "spool.replaying"
    before = [usage_row() for _ in range(3)]
    left = [usage_row() for _ in range(2)]
    torn = _spooled([usage_row()])[:-40]  # what SIGKILL mid-write leaves
    spool.write_bytes(_spooled(before[:2]) + b"not json at all\n" + _spooled(before[2:]) + torn)
    replaying.write_bytes(
        _spooled(left[:1]) + b'{"id": 1, "created_at": "never"}\n' + _spooled(left[1:])
    )
    gw = gateway(store_url, tmp_path)
    try:
        ids = {r["request_id"] for r in usage_rows(gw)}
        assert {r["request_id"] for r in before + left} <= ids
        assert not spool.exists() and not replaying.exists()
        assert metric(gw, 'pilothouse_rows_quarantined_total{queue="usage"}') == 3
        lines = (tmp_path / "spool.quarantine.jsonl").read_text().splitlines()
        assert len(lines) == 3
        assert any("not json at all" in ln for ln in lines)
        assert httpx.get(gw.url + "/readyz").status_code == 200
    finally:
        gw.stop()


def test_one_bad_trace_does_not_drop_its_batch(store_url: str, tmp_path: Path) -> None:
    """Item 7: a NUL in `user` (PostgreSQL refuses it) or a depth orjson refuses costs one trace."""
    gw = gateway(store_url, tmp_path, telemetry={"flush_interval_s": 30.0})
    try:
        assert gw.runtime is not None
        key = gw.create_key()
        responses = [chat(gw, key) for _ in range(5)]
        nul = chat(gw, key, {"user": "eve\x00il"})
        deep = chat(gw, key, deep_header(254))
        responses += [chat(gw, key) for _ in range(15)]
        assert all(r.status_code == 200 for r in responses)
        on_loop(gw, gw.runtime.telemetry.traces.flush())
        stored = stored_traces(gw.settings.store.url)
        for resp in responses:
            assert resp.headers["x-request-id"] in stored
        refused = [r for r in (nul, deep) if r.status_code == 200]
        missing = [r for r in refused if r.headers["x-request-id"] not in stored]
        quarantined = metric(gw, 'pilothouse_rows_quarantined_total{queue="traces"}')
        assert quarantined == len(missing)
        if store_url.startswith("postgresql") and nul.status_code == 200:
            assert nul.headers["x-request-id"] not in stored  # quarantined, not half-written
            assert "eve" in (tmp_path / "spool.quarantine.jsonl").read_text()
        assert httpx.get(gw.url + "/readyz").json()["checks"]["trace_writer"] == "ok"
    finally:
        gw.stop()


def test_traces_spool_during_a_store_outage_and_replay(tmp_path: Path) -> None:
    """Item 7: a store that cannot be written (locked) spools traces; they land once it is back."""
    db = tmp_path / "ph.db"
    gw = gateway(f"sqlite:///{db}", tmp_path, telemetry={"flush_interval_s": 30.0})
    spool = tmp_path / "spool.traces.jsonl"
    try:
        assert gw.runtime is not None
        key = gw.create_key()
        first = chat(gw, key)
        on_loop(gw, gw.runtime.telemetry.traces.flush())
        lock = sqlite3.connect(db, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")  # the store refuses every write now
        try:
            during = [chat(gw, key) for _ in range(4)]
            assert all(r.status_code == 200 for r in during)
            on_loop(gw, gw.runtime.telemetry.traces.flush())
            assert spool.exists()
            assert len(spool.read_bytes().splitlines()) == 4
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        on_loop(gw, gw.runtime.telemetry.traces.replay())
        stored = stored_traces(gw.settings.store.url)
        for resp in [first, *during]:
            assert resp.headers["x-request-id"] in stored
        assert not spool.exists()
        # Replaying again (a restart after a partial replay) cannot duplicate.
        assert len(stored) == 5
    finally:
        gw.stop()


def test_a_full_trace_spool_drops_and_counts(tmp_path: Path) -> None:
    db = tmp_path / "ph.db"
    gw = gateway(
        f"sqlite:///{db}",
        tmp_path,
        telemetry={"flush_interval_s": 30.0, "spool_max_bytes": 1},
    )
    try:
        assert gw.runtime is not None
        key = gw.create_key()
        assert chat(gw, key).status_code == 200  # the key is cached from here on
        on_loop(gw, gw.runtime.telemetry.traces.flush())
        # That first trace must be in the store before the outage starts, or it is dropped too.
        deadline = time.monotonic() + 30
        while _trace_count(db) < 1 and time.monotonic() < deadline:
            on_loop(gw, gw.runtime.telemetry.traces.flush())
        assert _trace_count(db) == 1
        lock = sqlite3.connect(db, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            assert all(chat(gw, key).status_code == 200 for _ in range(3))
            on_loop(gw, gw.runtime.telemetry.traces.flush())
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert metric(gw, 'pilothouse_queue_dropped_total{queue="traces"}') == 3
    finally:
        gw.stop()


def _trace_count(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT count(*) FROM traces").fetchone()[0])
