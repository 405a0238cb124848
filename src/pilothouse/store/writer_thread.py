"""Where the background writers run: a dedicated thread with its own loop and engine.

Why: building trace rows, encoding parameters and talking to the store cost
CPU on whatever event loop runs them, and on the request loop every request
waits behind that work (``pilothouse_event_loop_lag_seconds``). The request
loop therefore only appends to a :class:`Handoff` (a deque: no lock, no system
call unless the writer is asleep and the batch it waits for is complete); a
:class:`WriterThread` runs the usage ledger and the trace recorder on its own
event loop with its own engine (aiosqlite or asyncpg). :class:`InlineWriter`
keeps them on the caller's loop (an in-memory SQLite store, which a second
engine would not see, and tests of the writers' own logic).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.config.schema import StoreConfig
from pilothouse.store.db import create_engine

log = logging.getLogger("pilothouse.writers")
T = TypeVar("T")
#: Longest a request thread waits for the GIL while the writer thread computes.
SWITCH_INTERVAL_S = 0.001


class WriterLoop(Protocol):
    """What a writer needs from where it runs."""

    @property
    def engine(self) -> AsyncEngine: ...

    def alive(self) -> bool: ...

    async def call(self, coro: Coroutine[Any, Any, T]) -> T: ...


class InlineWriter:
    """Writers on the caller's event loop, with the caller's engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    def alive(self) -> bool:
        return True

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return await coro


class WriterThread:
    """One daemon thread running an event loop and an engine of its own."""

    def __init__(self, make_engine: Callable[[], AsyncEngine], name: str = "pilothouse-writer"):
        self._make_engine = make_engine
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._engine: AsyncEngine | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self.stopping = False
        self.restarts = 0

    @property
    def engine(self) -> AsyncEngine:
        assert self._engine is not None, "writer thread not started"
        return self._engine

    def start(self) -> None:
        """Start the thread and wait until its loop runs."""
        if sys.getswitchinterval() > SWITCH_INTERVAL_S:
            # A CPU-bound writer thread keeps the GIL up to the switch interval
            # (5 ms by default) whenever the request loop wants it back.
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        ready = threading.Event()
        self.stopping = False
        self._thread = threading.Thread(target=self._main, args=(ready,), name=self.name)
        self._thread.daemon = True
        self._thread.start()
        ready.wait()

    def _main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._engine = self._make_engine()
            self._stop = asyncio.Event()
            ready.set()
            loop.run_until_complete(self._stop.wait())
            loop.run_until_complete(self._engine.dispose())
        except BaseException:
            log.exception("writer thread %s died", self.name)
        finally:
            ready.set()
            with contextlib.suppress(Exception):
                for task in asyncio.all_tasks(loop):
                    task.cancel()
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and self.loop is not None

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the writer loop and wait for it from any loop."""
        loop = self.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            return await coro
        if loop is None or not self.alive():
            coro.close()
            raise RuntimeError(f"writer thread {self.name} is not running")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    async def watch(
        self, on_restart: Callable[[], Coroutine[Any, Any, None]], interval_s: float = 1.0
    ) -> None:
        """On the request loop: start a new thread (and writers) if this one died.

        The handoff queues are plain deques, so rows queued meanwhile wait for
        the new thread; ``on_restart`` re-starts the writers on its loop.
        """
        while not self.stopping:
            await asyncio.sleep(interval_s)
            if self.stopping or self.alive():
                continue
            self.restarts += 1
            log.error("writer thread %s died; starting a new one", self.name)
            try:
                self.start()
                await on_restart()
            except Exception:
                log.exception("writer thread %s restart failed; will retry", self.name)

    async def stop(self, timeout_s: float = 60.0) -> None:
        """Dispose of the engine and end the thread (after the writers drained)."""
        self.stopping = True
        loop, stop = self.loop, self._stop
        if loop is not None and stop is not None and self.alive():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, timeout_s)


def in_memory(url: str) -> bool:
    """An in-memory SQLite store: a second engine would open a different, empty database."""
    if not url.startswith("sqlite"):
        return False
    path = url.split("://", 1)[-1].lstrip("/")
    return path in ("", ":memory:") or "mode=memory" in url


def writer_loop(store: StoreConfig, engine: AsyncEngine) -> WriterLoop:
    """A writer thread with its own engine for ``store``, or inline on ``engine``."""
    if not store.writer_thread or in_memory(store.url):
        return InlineWriter(engine)
    url = store.url
    return WriterThread(lambda: create_engine(url))


class Handoff(Generic[T]):
    """A bounded FIFO filled from any thread and drained by one writer loop.

    ``put_nowait`` never blocks: it says whether the item fit. The consumer
    sleeps until ``count`` items are queued (or an urgent item, a flush
    marker, arrives), so a busy request loop wakes the writer once per batch,
    not once per row.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._wake: asyncio.Event | None = None
        self._want = 0  # the consumer sleeps until this many are queued; 0: awake
        self._urgent = 0  # urgent items queued and not yet taken

    def bind(self) -> None:
        """Make the running loop the consumer (called again after a restart)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = asyncio.Event()

    def put_nowait(self, item: T) -> bool:
        if len(self._items) >= self.maxsize:
            return False
        self._items.append(item)
        want = self._want
        if want and len(self._items) >= want:
            self._notify()
        return True

    def put_urgent(self, item: T) -> None:
        """Queue past the bound and wake the consumer now (flush markers)."""
        self._items.append(item)
        self._urgent += 1
        if self._want:
            self._notify()

    def _notify(self) -> None:
        self._want = 0
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        if threading.get_ident() == self._loop_thread:
            wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to wake
                loop.call_soon_threadsafe(wake.set)

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def get_nowait(self) -> T:
        try:
            return self._items.popleft()
        except IndexError:
            # Nothing queued, so nothing urgent: a count the two threads raced on
            # (it is not locked) cannot stay wrong. A flush missed that way waits
            # one batch window at most.
            self._urgent = 0
            raise asyncio.QueueEmpty from None

    def urgent_taken(self) -> None:
        """The consumer took an urgent item off the queue."""
        self._urgent = max(0, self._urgent - 1)

    async def wait(self, count: int = 1, timeout_s: float | None = None) -> None:
        """Until ``count`` items are queued, an urgent one arrived, or ``timeout_s`` passed."""
        wake = self._wake
        assert wake is not None, "Handoff.bind() first"
        while len(self._items) < count and not self._urgent:
            wake.clear()
            self._want = count
            if len(self._items) >= count or self._urgent:  # raced with a producer
                self._want = 0
                return
            try:
                if timeout_s is None:
                    await wake.wait()
                else:
                    async with asyncio.timeout(timeout_s):
                        await wake.wait()
            except TimeoutError:
                return
            finally:
                self._want = 0
            if timeout_s is not None:
                return  # woken: enough queued, or urgent
