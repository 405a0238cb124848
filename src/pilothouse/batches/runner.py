"""The batch runner: claims a batch by lease, runs its pending lines, finalises it.

Why a store-backed claim and not the arq queue the RAG worker uses: exactly-once
here is a property of the *line*, not of a job. A line is finished by one
conditional UPDATE (``pending`` → ``done``/``failed``) committed together with
its usage row, so whichever replica runs it, and however often a process dies
mid-call, a line has one result and one usage row or none (and is then run
again). The lease only keeps replicas from running the same batch at once; a
replica that dies frees it after ``batches.lease_s``. A job queue would add a
second source of truth (job state next to line state) without removing the
need for the conditional UPDATE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from pilothouse.batches.config import BatchesConfig
from pilothouse.batches.execute import Outcome, release, run_line
from pilothouse.batches.jsonl import ENDPOINTS
from pilothouse.batches.store import BatchStore, new_id
from pilothouse.errors import NotFoundError
from pilothouse.gateway import pipeline
from pilothouse.gateway.runtime import Runtime
from pilothouse.limits.keys import KeyRecord

log = logging.getLogger("pilothouse.batches")
KEY_REFRESH_S = 1.0
STATUS_CHECK_S = 0.5
MAX_RATE_WAIT_S = 60.0
COMMIT_TRIES = 5


class BatchRunner:
    """One per gateway process; several replicas share the work through leases."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.store = BatchStore(rt.engine)
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{new_id('')[-8:]}"
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._keys: dict[str, tuple[float, KeyRecord | None]] = {}  # key id → (read at, key)
        self._active: set[asyncio.Task[None]] = set()
        self._halts: set[asyncio.Event] = set()

    @property
    def config(self) -> BatchesConfig:
        return self.rt.settings.batches

    async def start(self) -> None:
        if self.config.run:
            self._task = asyncio.create_task(self._loop(), name="batches")

    def wake(self) -> None:
        """A batch was created or cancelled: look now instead of at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop taking lines, let in-flight ones finish (bounded), give the lease back."""
        self._stopping.set()
        self._wake.set()
        for halt in self._halts:
            halt.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(
                asyncio.shield(self._task), self.rt.settings.server.drain_timeout_s
            )
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- the claim loop ------------------------------------------------------------------

    async def _loop(self) -> None:
        """Claim batches (oldest first) while fewer than ``batches.max_active`` run here."""
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                batch = None
                if len(self._active) < self.config.max_active:
                    try:
                        batch = await self.store.claim(self.owner, self.config.lease_s)
                    except (SQLAlchemyError, OSError) as exc:
                        log.warning("batch claim failed (store down?): %s", type(exc).__name__)
                if batch is None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.config.poll_interval_s)
                    continue
                task = asyncio.create_task(self._guarded(batch), name=f"batch-{batch.id}")
                self._active.add(task)
                task.add_done_callback(self._active.discard)
        finally:
            if self._active:
                await asyncio.gather(*self._active, return_exceptions=True)

    async def _guarded(self, batch: Any) -> None:
        try:
            await self._run(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never kill the runner; the lease lapses, someone retries
            log.error("batch %s: runner error", batch.id, exc_info=exc)
            with contextlib.suppress(Exception):
                await self.store.release(batch.id, self.owner)
        finally:
            self._wake.set()  # a slot is free: look for the next batch now

    async def _run(self, batch: Any) -> None:
        lost = asyncio.Event()
        keeper = asyncio.create_task(self._keep_lease(batch.id, lost), name=f"lease-{batch.id}")
        finished = False
        try:
            await self.store.start(batch.id, self.owner)
            target = await self._work(batch, lost)
            if target is not None and not lost.is_set():
                if target == "completed":
                    await self.store.mark_finalizing(batch.id, self.owner)
                finished = await self.store.finalize(batch.id, self.owner, target)
                log.info("batch %s %s", batch.id, target)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            if not finished and not lost.is_set():
                with contextlib.suppress(Exception):
                    await self.store.release(batch.id, self.owner)

    async def _keep_lease(self, batch_id: str, lost: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self.config.lease_s / 3)
            try:
                if not await self.store.renew(batch_id, self.owner, self.config.lease_s):
                    log.warning("batch %s: lease lost to another replica", batch_id)
                    lost.set()
                    return
            except (SQLAlchemyError, OSError) as exc:
                log.warning("batch %s: lease renewal failed: %s", batch_id, type(exc).__name__)

    async def _work(self, batch: Any, lost: asyncio.Event) -> str | None:
        """Run pending lines until none is left (``completed``), the batch is cancelled or
        expires; ``None`` when this replica stops or loses the lease (lines stay pending).

        In-flight lines are always drained before it returns, whatever happens, so a line
        is never left running untracked while the batch is claimed again.
        """
        in_flight: dict[asyncio.Task[None], int] = {}
        halt = asyncio.Event()  # cancelled, expired or stopping: RPM waits give up their turn
        self._halts.add(halt)
        try:
            return await self._dispatch(batch, lost, in_flight, halt)
        finally:
            halt.set()
            await self._drain(in_flight)
            self._halts.discard(halt)

    async def _dispatch(
        self,
        batch: Any,
        lost: asyncio.Event,
        in_flight: dict[asyncio.Task[None], int],
        halt: asyncio.Event,
    ) -> str | None:
        queue: list[Any] = []
        key: KeyRecord | None = None
        checked = 0.0
        while True:
            if self._stopping.is_set() or lost.is_set():
                return None
            try:
                if time.monotonic() - checked >= STATUS_CHECK_S:
                    checked = time.monotonic()
                    status, expires_at = await self.store.status(batch.id)
                    if status == "cancelling":
                        return "cancelled"
                    if datetime.now(UTC) >= expires_at:
                        return "expired"
                room = self.config.concurrency - len(in_flight)
                if room > 0 and not queue:
                    skip = set(in_flight.values())
                    limit = self.config.concurrency * 8
                    queue = await self.store.pending_lines(batch.id, skip, limit)
                    if not queue and not in_flight:
                        return "completed"
                key = await self._current_key(batch.key_id)
            except (SQLAlchemyError, OSError) as exc:  # store blip: in-flight lines go on
                log.warning("batch %s: store read failed: %s", batch.id, type(exc).__name__)
                room, queue = 0, []
                if not in_flight:
                    await asyncio.sleep(self.config.poll_interval_s)
                    continue
            while room > 0 and queue:
                row = queue.pop(0)
                task = asyncio.create_task(self._line(batch, key, row, halt))
                in_flight[task] = row.line
                room -= 1
            if in_flight:
                await self._wait_any(batch.id, in_flight)

    async def _wait_any(self, batch_id: str, in_flight: dict[asyncio.Task[None], int]) -> None:
        """Until a line finishes, the replica stops, or it is time to look at the batch."""
        waiter: asyncio.Task[Any] = asyncio.create_task(self._stopping.wait())
        done, _ = await asyncio.wait(
            [*in_flight, waiter], timeout=STATUS_CHECK_S, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        for task in done:
            if task in in_flight:
                del in_flight[task]
                if not task.cancelled() and task.exception() is not None:
                    log.error("batch %s: line failed", batch_id, exc_info=task.exception())

    async def _drain(self, in_flight: dict[asyncio.Task[None], int]) -> None:
        """In-flight lines finish (cancel and expiry let them complete, as OpenAI does)."""
        if not in_flight:
            return
        timeout = self.rt.settings.server.drain_timeout_s
        _done, pending = await asyncio.wait(in_flight, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _current_key(self, key_id: str) -> KeyRecord | None:
        """The batch's key, re-read at most once a second (a PATCH or revoke applies at once)."""
        now = time.monotonic()
        read_at, key = self._keys.get(key_id, (0.0, None))
        if key is None or now - read_at >= KEY_REFRESH_S:
            try:
                key = await self.rt.keys.get(key_id)
            except NotFoundError:
                key = None
            self._keys[key_id] = (now, key)
        return key

    # -- one line ------------------------------------------------------------------------

    async def _line(self, batch: Any, key: KeyRecord | None, row: Any, halt: asyncio.Event) -> None:
        if key is None:
            key = _deleted_key(batch.key_id)
        endpoint = ENDPOINTS[batch.endpoint]
        metadata = {"batch_id": batch.id, "custom_id": row.custom_id}
        tries = 0
        while True:
            outcome = await run_line(self.rt, key, endpoint, row.body, metadata)
            if outcome.wait_s is not None:  # RPM/TPM or open circuits: waits, never fails
                release(self.rt, outcome.ctx)
                wait = min(max(outcome.wait_s, 0.05), MAX_RATE_WAIT_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(halt.wait(), wait)
                if halt.is_set() or self._stopping.is_set():
                    return  # still pending: cancelled/expired at finalisation, or run later
                continue
            tries += 1
            again = outcome.retryable and not outcome.ctx.cost_pico
            if again and tries < self.config.max_attempts and not self._stopping.is_set():
                pipeline.finish(self.rt, outcome.ctx, ledger=False)  # settle; keep its trace
                await asyncio.sleep(self.config.retry_backoff_s * 2 ** (tries - 1))
                continue
            break
        await self._record(batch.id, row, outcome, tries)

    async def _record(self, batch_id: str, row: Any, outcome: Outcome, tries: int) -> None:
        ctx = outcome.ctx
        result = {
            "id": new_id("batch_req_"),
            "custom_id": row.custom_id,
            "response": {
                "status_code": outcome.status,
                "request_id": ctx.request_id,
                "body": outcome.body,
            },
            "error": None,
        }
        usage = pipeline.usage_row(self.rt, ctx)
        try:
            for attempt in range(COMMIT_TRIES):
                try:
                    stored = await self.store.finish_line(
                        batch_id,
                        row.line,
                        ok=outcome.ok,
                        status_code=outcome.status,
                        result=result,
                        request_id=ctx.request_id,
                        attempts=tries,
                        usage=usage,
                    )
                    if not stored:
                        log.warning("batch %s line %d was already finished", batch_id, row.line)
                    return
                except (SQLAlchemyError, OSError) as exc:
                    log.warning(
                        "batch %s line %d: store write failed (%s); retrying",
                        batch_id, row.line, type(exc).__name__,
                    )  # fmt: skip
                    await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
        finally:
            pipeline.finish(self.rt, ctx, ledger=False)  # settle reservations, write the trace


def _deleted_key(key_id: str) -> KeyRecord:
    """Stand-in for a key deleted from the store: revoked, so every line is a 401."""
    return KeyRecord(
        id=key_id, name="deleted", prefix="", scopes=frozenset(), models=frozenset(),
        rpm=None, tpm=None, revoked=True,
    )  # fmt: skip
