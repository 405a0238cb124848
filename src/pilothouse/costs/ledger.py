"""The usage ledger: one row per request, written off the hot path, never lost.

Rows go into a bounded in-memory queue and are inserted in batches by one
background task. When the store is unreachable a batch is appended to a local
spool file (JSON lines) and replayed once the store answers again; inserts
are idempotent (row id is the primary key), so a replay after a partial
failure cannot double-count money.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.store.tables import usage_records

log = logging.getLogger("pilothouse.ledger")
WRITE_CHUNK = 50  # rows per INSERT statement
Row = dict[str, Any]


def _encode(row: Row) -> bytes:
    return orjson.dumps(row) + b"\n"


def _decode(line: bytes) -> Row:
    row: Row = orjson.loads(line)
    row["created_at"] = datetime.fromisoformat(row["created_at"])
    return row


class UsageLedger:
    def __init__(
        self,
        engine: AsyncEngine,
        spool_path: str | Path,
        *,
        batch_size: int = 500,
        flush_interval_s: float = 0.2,
        queue_size: int = 100_000,
        replay_interval_s: float = 2.0,
    ) -> None:
        self.engine = engine
        self.spool_path = Path(spool_path)
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.replay_interval_s = replay_interval_s
        self.queue: asyncio.Queue[Row | asyncio.Future[None]] = asyncio.Queue(queue_size)
        self.written = 0
        self.spooled = 0
        self.store_ok = True
        self._task: asyncio.Task[None] | None = None
        self._taken: list[Row] = []  # out of the queue, not yet committed
        self._replay_task: asyncio.Task[None] | None = None
        dialect = engine.dialect.name
        self._insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(
            usage_records
        ).on_conflict_do_nothing(index_elements=["id"])

    # -- producer side (hot path) ------------------------------------------------------

    def record(self, row: Row) -> None:
        """Queue a row; never blocks, never drops (a full queue spools to disk)."""
        try:
            self.queue.put_nowait(row)
        except asyncio.QueueFull:
            self._spool_sync([row])

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await self.replay()  # rows spooled by a previous run that ended while the store was down
        self._task = asyncio.create_task(self._run(), name="ledger-writer")
        self._replay_task = asyncio.create_task(self._replay_loop(), name="ledger-replay")

    async def flush(self) -> None:
        """Wait until everything queued so far is written (or spooled)."""
        if self._task is None or self._task.done():
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.queue.put(done)
        await done

    async def stop(self) -> None:
        """Drain the queue, write or spool everything, then stop the tasks."""
        await self.flush()
        for task in (self._task, self._replay_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._replay_task = None
        # Rows the writer had taken but not yet committed when it was cancelled:
        # inserts are idempotent, so writing them again is safe.
        leftovers = list(self._taken)
        self._taken = []
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if isinstance(item, dict):
                leftovers.append(item)
            elif not item.done():
                item.set_result(None)
        if leftovers:
            await self._write(leftovers)
        await self.replay()

    # -- writer -------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            item = await self.queue.get()
            batch: list[Row] = []
            self._taken = batch  # visible to stop() if this task is cancelled mid-batch
            waiters: list[asyncio.Future[None]] = []
            self._take(item, batch, waiters)
            loop = asyncio.get_running_loop()
            until = loop.time() + self.flush_interval_s
            while len(batch) < self.batch_size and not waiters:
                try:
                    item = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = until - loop.time()
                    if left <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self.queue.get(), left)
                    except TimeoutError:
                        break
                self._take(item, batch, waiters)
            if batch:
                await self._write(batch)
            self._taken = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    @staticmethod
    def _take(
        item: Row | asyncio.Future[None], batch: list[Row], waiters: list[asyncio.Future[None]]
    ) -> None:
        if isinstance(item, dict):
            batch.append(item)
        else:
            waiters.append(item)

    async def _write(self, batch: list[Row]) -> None:
        try:
            async with self.engine.begin() as conn:
                # One transaction, small statements: parameters are prepared on the
                # event loop, and a single huge executemany would stall requests.
                for start in range(0, len(batch), WRITE_CHUNK):
                    await conn.execute(self._insert, batch[start : start + WRITE_CHUNK])
        except Exception as exc:  # any store failure: keep the money, write it down locally
            if self.store_ok:
                log.warning(
                    "usage store unreachable (%s); spooling to %s",
                    type(exc).__name__,
                    self.spool_path,
                )
            self.store_ok = False
            await asyncio.to_thread(self._spool_sync, batch)
            return
        self.store_ok = True
        self.written += len(batch)

    def _spool_sync(self, rows: list[Row]) -> None:
        self.spool_path.parent.mkdir(parents=True, exist_ok=True)
        with self.spool_path.open("ab") as fh:
            fh.write(b"".join(_encode(r) for r in rows))
            fh.flush()
            os.fsync(fh.fileno())
        self.spooled += len(rows)

    # -- replay -------------------------------------------------------------------------

    async def _replay_loop(self) -> None:
        while True:
            await asyncio.sleep(self.replay_interval_s)
            if self.spool_path.exists():
                await self.replay()

    async def replay(self) -> int:
        """Insert spooled rows into the store; the spool is removed only on success."""
        if not self.spool_path.exists():
            return 0
        working = self.spool_path.with_suffix(".replaying")
        if not working.exists():
            os.replace(self.spool_path, working)
        lines = [ln for ln in working.read_bytes().splitlines() if ln.strip()]
        rows = [_decode(ln) for ln in lines]
        try:
            async with self.engine.begin() as conn:
                for start in range(0, len(rows), self.batch_size):
                    await conn.execute(self._insert, rows[start : start + self.batch_size])
        except Exception:
            return 0  # still down; the file stays for the next attempt
        working.unlink()
        self.store_ok = True
        self.written += len(rows)
        log.info("replayed %d spooled usage records", len(rows))
        return len(rows)
