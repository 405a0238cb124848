"""Issue 13 "a flat tail": the usage and trace writers run on their own thread.

Through real gateways on SQLite and PostgreSQL: rows keep reaching the store
while the request loop is blocked (so the writers are not on it), shutdown
drains what is queued, and a writer thread that dies is reported by
readiness and restarted, and the rows queued meanwhile still end up stored.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pilothouse.config.load import parse_settings
from pilothouse.store.batch import WriterHealth
from pilothouse.store.writer_thread import Handoff, WriterThread
from tests.adversarial.test_writers import (
    chat,
    metric,
    nested,
    on_loop,
    stored_traces,
    usage_row,
)
from tests.support.gateway import ThreadedGateway, base_config
from tests.support.ledger import stored_rows, usage_rows
from tests.support.receivers import http_sink

pytestmark = pytest.mark.integration


def gateway(store_url: str, tmp_path: Path, **extra: Any) -> ThreadedGateway:
    extra["store"] = {"writer_thread": True, **extra.get("store", {})}
    return ThreadedGateway(parse_settings(base_config(store_url, tmp_path, **extra))).start()


def test_rows_are_written_while_the_request_loop_is_blocked(store_url: str, tmp_path: Path) -> None:
    gw = gateway(store_url, tmp_path)
    try:
        assert gw.runtime is not None
        ledger = gw.runtime.ledger
        rows = [usage_row() for _ in range(30)]
        wanted = {r["request_id"] for r in rows}

        async def record_then_block() -> set[str]:
            # A read the request loop has open when it blocks would hold SQLite's
            # shared lock (rollback journal) until the end: no writer could commit.
            # Block only once this loop holds no connection; none can start after.
            pool = gw.runtime.engine.sync_engine.pool
            while pool.checkedout():  # type: ignore[attr-defined]
                await asyncio.sleep(0)
            for row in rows:
                ledger.record(row)
            # Never yields: anything running on this loop is stuck until we return.
            seen: set[str] = set()
            deadline = time.monotonic() + 60
            with ThreadPoolExecutor(1) as pool:
                while not wanted <= seen and time.monotonic() < deadline:
                    found = pool.submit(stored_rows, store_url).result()
                    seen = {r["request_id"] for r in found}
            return seen

        seen = on_loop(gw, record_then_block())
        assert wanted <= seen, "the writer must not need the request loop"
        assert isinstance(gw.runtime.writer, WriterThread)
        assert gw.runtime.writer.alive()
    finally:
        gw.stop()


def test_shutdown_drains_both_queues_and_ends_the_thread(store_url: str, tmp_path: Path) -> None:
    gw = gateway(
        store_url,
        tmp_path,
        store={"flush_interval_s": 30.0, "batch_size": 10_000},
        telemetry={"flush_interval_s": 30.0},
    )
    assert gw.runtime is not None
    writer = gw.runtime.writer
    key = gw.create_key()
    answered = [chat(gw, key) for _ in range(5)]
    assert all(r.status_code == 200 for r in answered)
    rows = [usage_row() for _ in range(200)]

    async def queue_all() -> None:
        for row in rows:
            gw.runtime.ledger.record(row)  # type: ignore[union-attr]

    on_loop(gw, queue_all())
    gw.stop()
    assert isinstance(writer, WriterThread) and not writer.alive()
    ids = {r["request_id"] for r in stored_rows(store_url)}
    assert {r["request_id"] for r in rows} <= ids
    assert {r.headers["x-request-id"] for r in answered} <= ids
    assert {r.headers["x-request-id"] for r in answered} <= set(stored_traces(store_url))
    assert not list(tmp_path.glob("spool.journal.*")), "a clean stop leaves no journal"


def test_a_dead_writer_thread_is_restarted_and_loses_no_usage(
    store_url: str, tmp_path: Path
) -> None:
    gw = gateway(store_url, tmp_path)
    try:
        assert gw.runtime is not None
        writer = gw.runtime.writer
        assert isinstance(writer, WriterThread) and writer.loop is not None
        key = gw.create_key()
        assert chat(gw, key).status_code == 200
        assert httpx.get(gw.url + "/readyz").status_code == 200
        dead_loop = writer.loop

        def die() -> None:
            raise SystemExit("writer thread killed by the test")

        dead_loop.call_soon_threadsafe(die)
        after = [chat(gw, key) for _ in range(3)]  # queued whether or not a writer runs
        assert all(r.status_code == 200 for r in after)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            writer.restarts >= 1
            and writer.alive()
            and httpx.get(gw.url + "/readyz").status_code == 200
        ):
            threading.Event().wait(0.05)
        assert writer.restarts >= 1 and writer.loop is not dead_loop
        assert httpx.get(gw.url + "/readyz").json()["checks"]["usage_writer"] == "ok"
        ids = {r["request_id"] for r in usage_rows(gw)}
        assert {r.headers["x-request-id"] for r in after} <= ids
        assert metric(gw, 'pilothouse_writer_restarts_total{queue="usage"}') >= 1
    finally:
        gw.stop()


def test_rows_quarantined_on_the_writer_thread_alert_the_webhook_once(
    store_url: str, tmp_path: Path
) -> None:
    with http_sink("/hook") as (sink, received):
        gw = gateway(store_url, tmp_path, slo={"webhook": {"url": sink + "/hook"}})
        try:
            assert gw.runtime is not None
            bad = [usage_row(metadata={"user": nested(300)}) for _ in range(3)]

            async def queue_all() -> None:
                for row in bad:
                    gw.runtime.ledger.record(row)  # type: ignore[union-attr]

            on_loop(gw, queue_all())
            ids = {r["request_id"] for r in usage_rows(gw)}
            assert {r["request_id"] for r in bad} <= ids  # salvaged
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not received.bodies:
                received.arrived.wait(0.1)
            on_loop(gw, gw.runtime.ledger.flush())
        finally:
            gw.stop()  # the webhook queue is drained at shutdown
    alerts = [orjson.loads(b) for b in received.bodies]
    quarantined = [a for a in alerts if "rows_quarantined" in str(a)]
    assert len(quarantined) == 1, alerts


def test_readiness_names_a_dead_writer_thread() -> None:
    health = WriterHealth("usage", 30.0, alive=lambda: False)
    assert health.check(0) == "dead: writer thread exited"
    health.stopping = True  # shutting down: not a failure
    assert health.check(0) == "stopped"


def test_handoff_is_bounded_and_wakes_its_consumer_from_another_thread() -> None:
    async def main() -> list[int]:
        queue: Handoff[int] = Handoff(3)
        queue.bind()
        assert [queue.put_nowait(i) for i in range(4)] == [True, True, True, False]
        got = [queue.get_nowait() for _ in range(3)]
        producer = threading.Thread(target=lambda: [queue.put_nowait(i) for i in (7, 8)])
        waiting = asyncio.create_task(queue.wait(2))
        producer.start()
        await asyncio.wait_for(waiting, 30)
        producer.join()
        return [*got, queue.get_nowait(), queue.get_nowait()]

    assert asyncio.run(main()) == [0, 1, 2, 7, 8]
