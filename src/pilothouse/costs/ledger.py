"""The usage ledger: one row per request, written off the hot path, never lost.

Rows go into a bounded in-memory queue and are inserted in batches by one
supervised background task, on the dedicated writer thread when one is given
(``store/writer_thread.py``): the request loop only appends the row. When
the store is unreachable a batch is appended to a local spool file (JSON
lines) and replayed once the store answers again; inserts are idempotent
(row id is the primary key), so a replay after a partial failure cannot double-count money.

One bad row never costs more than itself: a batch the store refuses is split
until only the bad row fails; that row is quarantined (kept with its reason
next to the spool, counted, logged once) and written again with its metadata
reduced to plain top-level values, so its tokens and cost are still counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.store.batch import WriterHealth, store_answers, supervise, write_isolated
from pilothouse.store.journal import Journal
from pilothouse.store.raw_insert import RawInsert
from pilothouse.store.spool import Quarantine, Spool, parse_datetimes, quarantine_path
from pilothouse.store.tables import usage_records
from pilothouse.store.writer_thread import Handoff, InlineWriter, WriterLoop

log = logging.getLogger("pilothouse.ledger")
WRITE_CHUNK = 50  # rows per INSERT statement
QUEUE = "usage"
Row = dict[str, Any]


def _decode(row: Any) -> Row:
    return parse_datetimes(row, ("created_at",))


def salvage(row: Row, reason: str) -> Row:
    """The row with metadata reduced to plain, storable top-level values.

    Keeps what attribution needs (``team``, ``user`` as a string, ...) and
    marks the row, so money is never lost because of what a client put in
    its metadata.
    """
    kept: dict[str, Any] = {}
    meta = row.get("metadata")
    if isinstance(meta, dict):
        for key, value in meta.items():
            if not isinstance(key, str) or "\x00" in key or len(key) > 200:
                continue
            if _plain(value):
                kept[key] = value
    kept["pilothouse_quarantined"] = reason[:200]
    return {**row, "metadata": kept}


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _plain(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" not in value and len(value) <= 1000
    if isinstance(value, float):
        return value == value and abs(value) != float("inf")
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**63
    return value is None or isinstance(value, bool)


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
        quarantine: Quarantine | None = None,
        stall_after_s: float = 30.0,
        journal: bool = False,
        writer: WriterLoop | None = None,
    ) -> None:
        self.engine = engine
        # Where batches are written: the writer thread's loop and engine, or this loop's.
        self.writer: WriterLoop = writer or InlineWriter(engine)
        self.spool_path = Path(spool_path)
        self.quarantine = quarantine or Quarantine(quarantine_path(spool_path))
        self.spool = Spool(self.spool_path, QUEUE, self.quarantine)
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.replay_interval_s = replay_interval_s
        self.queue: Handoff[Row | asyncio.Future[None]] = Handoff(queue_size)
        self.written = 0
        self.store_ok = True
        self.health = WriterHealth("usage", stall_after_s, alive=self.writer.alive)
        self._taken: list[Row] = []  # out of the queue, not yet committed
        self._waiters: list[asyncio.Future[None]] = []
        self._replay_task: asyncio.Task[None] | None = None
        # Queued rows are journaled until durable, so a hard kill loses none (store/journal.py).
        self.journal = Journal(self.spool_path) if journal else None
        self._replay_lock = asyncio.Lock()
        self._insert = RawInsert(usage_records, engine.dialect, ["id"])

    # -- producer side (hot path) ------------------------------------------------------

    def record(self, row: Row) -> None:
        """Queue a row; never blocks, never drops (a full queue spools to disk)."""
        journal = self.journal
        if journal is None:
            if not self.queue.put_nowait(row):
                self._spool_now([row])
            return
        # Under the journal's lock: the writer thread's made_durable() must not
        # count this row before it is journaled (the journal counts FIFO).
        with journal.lock:
            if self.queue.put_nowait(row):
                journal.append(row)
                return
        self._spool_now([row])

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    @property
    def spooled(self) -> int:
        return self.spool.spooled

    def health_check(self) -> str:
        return self.health.check(self.depth)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await self.writer.call(self._start())

    async def _start(self) -> None:
        self.queue.bind()
        self._replay_lock = asyncio.Lock()
        if self.journal is not None:
            await asyncio.to_thread(self._adopt_orphans)
        await self._replay()  # rows spooled by a previous run that ended while the store was down
        self.health.stopping = False
        self.health.task = asyncio.create_task(
            supervise(self.health, self._run, self._on_crash), name="ledger-writer"
        )
        self._replay_task = asyncio.create_task(self._replay_loop(), name="ledger-replay")

    async def restart(self) -> None:
        """The writer thread died and a new one runs: keep the batch it held, start again."""
        await self.writer.call(self._restart())

    async def _restart(self) -> None:
        rows, self._taken = self._taken, []
        if rows:  # perhaps already committed: replay skips stored ids
            self._spool_now(rows)
            if self.journal is not None:
                self.journal.made_durable(len(rows))
        self._waiters = []  # futures of the dead loop: their flush() calls were cancelled
        await self._start()

    async def flush(self) -> None:
        """Wait until everything queued so far is written (or spooled)."""
        if not self.writer.alive():
            return
        await self.writer.call(self._flush())

    async def _flush(self) -> None:
        task = self.health.task
        if task is None or task.done():
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.put_urgent(done)
        await done

    async def stop(self) -> None:
        """Drain the queue, write or spool everything, then stop. Never raises."""
        try:
            await self.writer.call(self._stop())
        except Exception:
            log.exception("usage writer unavailable at shutdown; spooling the queue here")
            self._spool_now(self._take_all())
            if self.journal is not None:
                self.journal.close(delete=True)

    def _take_all(self) -> list[Row]:
        rows = list(self._taken)
        self._taken = []
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if isinstance(item, dict):
                rows.append(item)
            elif not item.done():
                with contextlib.suppress(RuntimeError):  # its loop is gone: nobody waits
                    item.get_loop().call_soon_threadsafe(_resolve, item)
        return rows

    async def _stop(self) -> None:
        try:
            await asyncio.wait_for(self._flush(), 60)
        except Exception as exc:
            log.error("usage writer did not drain (%s); writing the queue directly", exc)
        self.health.stopping = True
        for task in (self.health.task, self._replay_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._replay_task = None
        # Rows the writer had taken but not yet committed when it was cancelled:
        # inserts are idempotent, so writing them again is safe.
        leftovers = self._take_all()
        self._release_waiters()
        try:
            if leftovers:
                await self._write(leftovers)
            await self._replay()
        except Exception:
            log.exception("usage drain failed; spooling %d rows", len(leftovers))
            self._spool_now(leftovers)
        if self.journal is not None:
            self.journal.close(delete=True)  # every row is now stored or spooled

    # -- writer -------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self.health.beat()
            await self.queue.wait(1)
            self.health.beat()
            # Sleep through the batch window (a flush marker or a full batch ends it):
            # producers wake this loop once per batch, not once per row.
            await self.queue.wait(self.batch_size, self.flush_interval_s)
            batch: list[Row] = []
            self._taken = batch  # visible to stop() and the supervisor mid-batch
            self._waiters = []
            while len(batch) < self.batch_size and not self._waiters:
                try:
                    item = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                self._take(item, batch)
            if batch:
                await self._write(batch)
                if self.journal is not None:
                    self.journal.made_durable(len(batch))
            self._taken = []
            self._release_waiters()

    def _take(self, item: Row | asyncio.Future[None], batch: list[Row]) -> None:
        if isinstance(item, dict):
            batch.append(item)
        else:
            self.queue.urgent_taken()
            self._waiters.append(item)

    def _release_waiters(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters = []

    async def _on_crash(self, exc: BaseException) -> None:
        """The writer died mid-batch: keep its rows (spool) and wake its flushers."""
        rows, self._taken = self._taken, []
        if rows:
            self._spool_now(rows)
            if self.journal is not None:
                self.journal.made_durable(len(rows))
        self._release_waiters()

    async def _insert_rows(self, rows: list[Row]) -> None:
        async with self.writer.engine.begin() as conn:
            # One transaction, small statements: parameters are prepared on the
            # event loop, and a single huge executemany would stall requests.
            for start in range(0, len(rows), WRITE_CHUNK):
                await self._insert.execute(conn, rows[start : start + WRITE_CHUNK])

    async def _probe(self) -> bool:
        return await store_answers(self.writer.engine)

    async def _write(self, batch: list[Row]) -> None:
        """Insert a batch; bad rows are quarantined and salvaged, an outage spools."""
        out = await write_isolated(batch, self._insert_rows, self._probe)
        self.written += len(out.written)
        unwritten = list(out.unwritten)
        if out.bad:
            salvaged = []
            for row, reason in out.bad:
                self.quarantine.add(QUEUE, reason, row=row)
                salvaged.append(salvage(row, reason))
            again = await write_isolated(salvaged, self._insert_rows, self._probe)
            self.written += len(again.written)
            unwritten.extend(again.unwritten)
            for row, reason in again.bad:
                log.error("usage row %s unstorable even salvaged: %s", row.get("id"), reason)
        if unwritten:
            if self.store_ok:
                log.warning("usage store unreachable; spooling to %s", self.spool_path)
            self.store_ok = False
            await self._spool(unwritten)
        elif out.written:
            self.store_ok = True

    async def _spool(self, rows: list[Row]) -> None:
        lines = self._encode(rows)
        try:
            await asyncio.to_thread(self.spool.append, lines)
        except Exception:
            log.exception("cannot write usage spool %s (%d rows)", self.spool_path, len(lines))

    def _spool_now(self, rows: list[Row]) -> None:
        """Synchronous spool (full queue, crash clean-up); never raises."""
        try:
            self.spool.append(self._encode(rows))
        except Exception:
            log.exception("cannot write usage spool %s (%d rows)", self.spool_path, len(rows))

    def _encode(self, rows: list[Row]) -> list[bytes]:
        """Spool lines; a row that cannot be encoded is quarantined and salvaged."""
        lines: list[bytes] = []
        for row in rows:
            try:
                lines.append(orjson.dumps(row) + b"\n")
            except Exception as exc:
                reason = f"cannot encode as JSON: {exc}"
                self.quarantine.add(QUEUE, reason, row=row)
                lines.extend(self.spool.encode([salvage(row, reason)]))
        return lines

    # -- replay -------------------------------------------------------------------------

    def _adopt_orphans(self) -> None:
        """Hand the journals of dead processes to the spool (replay skips stored ids)."""
        assert self.journal is not None
        for path in self.journal.orphans():
            lines = [
                line + b"\n" for line in path.read_bytes().splitlines() if line not in (b"", b"{}")
            ]
            if lines:
                self.spool.append(lines)
                log.warning("adopting %d journaled usage rows from %s", len(lines), path.name)
            path.unlink(missing_ok=True)

    async def _replay_loop(self) -> None:
        while True:
            await asyncio.sleep(self.replay_interval_s)
            if self.spool.pending():
                try:
                    await self._replay()
                except Exception:
                    log.exception("usage spool replay failed; will retry")

    async def replay(self) -> int:
        """Insert spooled rows (on the writer's loop); see :meth:`_replay`."""
        return await self.writer.call(self._replay())

    async def _replay(self) -> int:
        """Insert spooled rows; a file is removed only once all its rows are stored.

        Undecodable lines (a torn tail after a hard kill) are quarantined and
        counted; a ``.replaying`` file a previous run left behind is replayed first.
        """
        total = 0
        async with self._replay_lock:
            while True:
                working = await asyncio.to_thread(self.spool.take)
                if working is None:
                    break
                rows, bad = await asyncio.to_thread(self.spool.read, working, _decode)
                for line, reason in bad:
                    self.quarantine.add(QUEUE, reason, line=line)
                out = await write_isolated(rows, self._insert_rows, self._probe)
                stored = len(out.written)
                salvaged = []
                for row, reason in out.bad:
                    self.quarantine.add(QUEUE, reason, row=row)
                    salvaged.append(salvage(row, reason))
                again = await write_isolated(salvaged, self._insert_rows, self._probe)
                stored += len(again.written)
                total += stored
                self.written += stored
                unwritten = out.unwritten + again.unwritten
                if unwritten:
                    if stored or out.bad:  # else the file already holds exactly these
                        lines = self._encode(unwritten)
                        await asyncio.to_thread(self.spool.keep, working, lines)
                    self.store_ok = False
                    break  # still down; the file stays for the next attempt
                await asyncio.to_thread(self.spool.finish, working)
                self.store_ok = True
        if total:
            log.info("replayed %d spooled usage records", total)
        return total
