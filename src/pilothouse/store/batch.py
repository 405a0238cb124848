"""Row-level isolation and supervision for the background writers.

Why: one row the store refuses (a NUL in a PostgreSQL text column, JSON
nested too deep to encode) must cost that row, not its batch and not the
writer. :func:`write_isolated` bisects a failed batch down to single rows
while the store answers, and hands back what is bad and what is unwritten
because the store is down. :func:`supervise` restarts a writer loop that
died; :class:`WriterHealth` tells ``/readyz`` whether it is dead or stalled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("pilothouse.writers")
T = TypeVar("T")
_OUTAGE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
    OSError,
    TimeoutError,
)


def is_outage(exc: BaseException) -> bool:
    """Whether an insert failed because the store is unavailable (not because of the data)."""
    if isinstance(exc, _OUTAGE):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", None)
    return isinstance(orig, _OUTAGE) or isinstance(exc.__cause__, _OUTAGE)


def describe(exc: BaseException) -> str:
    """A short reason for the quarantine file (the driver's message, no SQL, no parameters)."""
    orig = getattr(exc, "orig", None) or exc.__cause__ or exc
    return f"{type(orig).__name__}: {str(orig).splitlines()[0] if str(orig) else ''}"[:500]


async def store_answers(engine: AsyncEngine, timeout_s: float = 5.0) -> bool:
    """``SELECT 1`` within ``timeout_s``: tells a bad row from a store outage."""
    try:
        async with asyncio.timeout(timeout_s):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


@dataclass
class Outcome(Generic[T]):
    written: list[T] = field(default_factory=list)
    bad: list[tuple[T, str]] = field(default_factory=list)
    unwritten: list[T] = field(default_factory=list)  # the store went away: spool these


async def write_isolated(
    items: list[T],
    insert: Callable[[list[T]], Awaitable[None]],
    probe: Callable[[], Awaitable[bool]],
) -> Outcome[T]:
    """Insert ``items``; on a data error split the batch until only bad items fail.

    ``insert`` must be idempotent (the writers' inserts ignore existing ids),
    because halves of a failed batch are inserted again.
    """
    out: Outcome[T] = Outcome()
    stack = [items] if items else []
    while stack:
        chunk = stack.pop()
        try:
            await insert(chunk)
        except Exception as exc:
            if is_outage(exc) or not await probe():
                out.unwritten = chunk + [item for rest in reversed(stack) for item in rest]
                return out
            if len(chunk) == 1:
                out.bad.append((chunk[0], describe(exc)))
            else:
                mid = len(chunk) // 2
                stack.append(chunk[mid:])
                stack.append(chunk[:mid])
        else:
            out.written.extend(chunk)
    return out


class WriterHealth:
    """Liveness of one writer task, read by ``/readyz``."""

    def __init__(
        self, name: str, stall_after_s: float, alive: Callable[[], bool] | None = None
    ) -> None:
        self.name = name
        self.alive = alive  # the thread the writer runs on, when it has one
        self.stall_after_s = stall_after_s
        self.last_progress = time.monotonic()
        self.restarts = 0
        self.task: asyncio.Task[None] | None = None
        self.stopping = False
        self.on_restart: Callable[[], None] | None = None

    def beat(self) -> None:
        self.last_progress = time.monotonic()

    def check(self, depth: int) -> str:
        """``ok``, ``dead: ...`` or ``stalled: ...`` (queued work and no progress)."""
        task = self.task
        if self.alive is not None and not self.alive() and not self.stopping:
            return "dead: writer thread exited"
        if task is None or task.done():
            if self.stopping:
                return "stopped"
            reason = "not running"
            if task is not None and not task.cancelled() and task.exception() is not None:
                reason = f"died: {type(task.exception()).__name__}"
            return f"dead: {reason}"
        idle = time.monotonic() - self.last_progress
        if depth > 0 and idle > self.stall_after_s:
            return f"stalled: no progress for {idle:.0f}s with {depth} queued"
        return "ok"


async def supervise(
    health: WriterHealth,
    run: Callable[[], Awaitable[None]],
    on_crash: Callable[[BaseException], Awaitable[None]],
) -> None:
    """Run ``run`` forever; if it raises, clean up with ``on_crash`` and start it again."""
    delay = 0.05
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            health.restarts += 1
            log.exception("%s writer died; restarting (restart %d)", health.name, health.restarts)
            try:
                await on_crash(exc)
            except Exception:
                log.exception("%s writer crash clean-up failed", health.name)
            if health.on_restart is not None:
                health.on_restart()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            health.beat()
