"""The one thread that owns a llama.cpp model, fed through a bounded job queue.

One thread owns the model (:class:`LocalModel`): it loads it, runs every job
on it and frees it, so requests never interleave on one llama.cpp context.
The event loop only enqueues jobs and receives their output through
``loop.call_soon_threadsafe``, so it never waits on inference. When
``max_queue`` jobs already wait, a new one is refused at once (the router can
fall back) instead of the queue growing without bound.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pilothouse.errors import InvalidRequestError, PilothouseError, ProviderError

END = object()
"""Sentinel a job emits after its last item."""


class Job:
    """One request for the model thread; output flows back through :meth:`emit`.

    ``run`` executes on the model thread: it may emit items as they are made
    (stream chunks) and returns the terminal items (result, usage, ``END``).

    ``cancel`` is set by the event loop when the caller goes away; the model
    thread checks it (and the deadline) between tokens so abandoned or late
    generations stop early instead of holding the only model thread.
    """

    def __init__(
        self,
        run: Callable[[Any, Job], list[object]],
        kwargs: dict[str, Any],
        deadline: float,
        sink: Callable[[object], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.run = run
        self.kwargs = kwargs
        self.deadline = deadline
        self.cancel = threading.Event()
        self.timed_out = False
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self._sink = sink
        self._loop = loop

    def emit(self, item: object) -> None:
        """Hand ``item`` to the event loop; a closed loop means nobody is listening."""
        try:
            self._loop.call_soon_threadsafe(self._sink, item)
        except RuntimeError:
            self.cancel.set()

    def should_stop(self) -> bool:
        """Checked between tokens: the caller left, or the deadline passed."""
        if self.cancel.is_set():
            return True
        if time.monotonic() >= self.deadline:
            self.timed_out = True
            return True
        return False


def timeout_error() -> ProviderError:
    return ProviderError("local model did not finish before the deadline", timeout=True)


def map_error(exc: BaseException) -> PilothouseError:
    """Turn what the engine raises into the package's errors (client fault vs. failure)."""
    if isinstance(exc, PilothouseError):
        return exc
    text = str(exc)
    if isinstance(exc, ValueError):
        return InvalidRequestError(f"local model rejected the request: {text}"[:500])
    return ProviderError(
        f"local model failed: {type(exc).__name__}: {text}"[:500], upstream_status=500
    )


def engine_error(error: Any) -> PilothouseError:
    """An error object the llama.cpp server engine answered with, as a package error."""
    if not isinstance(error, dict):
        error = {"message": str(error)}
    message = str(error.get("message") or "unknown error")[:500]
    if error.get("type") == "exceed_context_size_error":
        return InvalidRequestError(
            f"prompt is too long for the local model: {message}",
            param="messages",
            code="context_length_exceeded",
        )
    if error.get("code") == 400 or error.get("type") == "invalid_request_error":
        return InvalidRequestError(f"local model rejected the request: {message}")
    return ProviderError(f"local model failed: {message}", upstream_status=500)


class LocalModel:
    """One GGUF model in llama.cpp's own server engine (``xllamacpp``), in process.

    The engine renders the GGUF's chat template, samples (penalties, grammar for
    ``response_format``, ``logit_bias``, seed) and counts usage itself. Every
    request runs as a stream, even a non-streamed one, so the model thread sees
    each token as it is made: it stops the generation when the caller leaves or
    the deadline passes, and streamed and non-streamed calls are counted by the
    same code. Used from the model thread only.
    """

    # llama-cpp-python's chat default, kept so answers without `temperature` do not change.
    DEFAULT_TEMPERATURE = 0.2

    def __init__(self, model_path: str, n_ctx: int, n_threads: int | None, seed: int | None):
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = model_path
        params.n_ctx = n_ctx
        params.n_parallel = 1  # one slot: the worker runs one job at a time anyway
        params.warmup = False
        params.verbosity = -1  # llama.cpp's own log lines stay off stderr
        params.sampling.temp = self.DEFAULT_TEMPERATURE
        if seed is not None:
            params.sampling.seed = seed
        cores = os.cpu_count() or 2
        # As llama-cpp-python did: half the cores generate, all of them read the prompt.
        params.cpuparams.n_threads = n_threads or max(cores // 2, 1)
        params.cpuparams_batch.n_threads = n_threads or cores
        self._server: Any = xllamacpp.Server(params)

    def stream(self, request: dict[str, Any], job: Job, on_chunk: Callable[[Any], None]) -> None:
        """Run ``request`` as a stream, handing each chunk to ``on_chunk`` until it ends.

        Returns early (no error) when :meth:`Job.should_stop` turns true between
        tokens; raises the engine's error as a package error.
        """
        failure: list[Any] = []

        def callback(chunk: Any) -> bool:
            if isinstance(chunk, dict) and "error" in chunk:
                failure.append(chunk["error"])
                return True
            on_chunk(chunk)
            return job.should_stop()

        body = {**request, "stream": True, "stream_options": {"include_usage": True}}
        if "prompt" in body:  # a legacy text completion: the raw prompt, no chat template
            result = self._server.handle_completions(body, callback)
        else:
            result = self._server.handle_chat_completions(body, callback)
        if isinstance(result, dict) and "error" in result:
            failure.append(result["error"])
        if failure:
            raise engine_error(failure[0])

    def close(self) -> None:
        """Free the model and its engine threads (on the model thread, which loaded it)."""
        self._server = None


@dataclass(slots=True)
class WorkerStats:
    """Counters for metrics and tests; written by one thread each, read anywhere."""

    completed: int = 0
    cancelled: int = 0
    failed: int = 0
    rejected: int = 0
    tokens_generated: int = 0


class ModelWorker:
    """A dedicated thread plus a bounded job queue in front of one model."""

    def __init__(self, load: Callable[[], LocalModel], max_queue: int, name: str) -> None:
        self._load = load
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._max_queue = max_queue
        self._admitted = 0  # queued + running; guarded by _lock
        self._lock = threading.Lock()
        self._name = name
        self._thread: threading.Thread | None = None
        self._current: Job | None = None
        self._closing = False
        self.stats = WorkerStats()

    @property
    def waiting(self) -> int:
        """Jobs queued behind the one running."""
        with self._lock:
            return self._admitted - (self._current is not None)

    async def start(self) -> None:
        """Start the thread and wait (without blocking the loop) until the model is loaded."""
        if self._thread is not None:
            return
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def report(exc: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, ready, exc)

        self._thread = threading.Thread(
            target=self._main, args=(report,), name=f"llamacpp-{self._name}", daemon=True
        )
        self._thread.start()
        try:
            await ready
        except BaseException:  # load failed, or start() was cancelled mid-load
            self._jobs.put_nowait(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
            raise

    def submit(self, job: Job) -> None:
        """Enqueue or refuse at once; never waits for room.

        The bound counts admitted jobs (running + waiting) under a lock rather
        than the queue's size, so a job the thread has not picked up yet
        cannot make the limit depend on thread scheduling.
        """
        if self._thread is None or self._closing:
            raise ProviderError("local model is not running", upstream_status=503)
        with self._lock:
            if self._admitted > self._max_queue:
                self.stats.rejected += 1
                raise ProviderError(
                    f"local model is busy ({self._max_queue} requests already waiting)",
                    upstream_status=503,
                    retry_after=1.0,
                )
            self._admitted += 1
        self._jobs.put_nowait(job)

    async def aclose(self) -> None:
        """Fail queued jobs, stop the running one, join the thread; it frees the model."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._closing = True
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.cancel.set()
                job.emit(ProviderError("local model is shutting down", upstream_status=503))
        current = self._current
        if current is not None:
            current.cancel.set()
        self._jobs.put_nowait(None)
        await asyncio.to_thread(thread.join)

    # -- the model thread -----------------------------------------------------------------

    def _main(self, report: Callable[[BaseException | None], None]) -> None:
        try:
            llm = self._load()
        except BaseException as exc:
            report(exc)
            return
        report(None)
        try:
            while (job := self._jobs.get()) is not None:
                self._run(llm, job)
        finally:
            llm.close()

    def _run(self, llm: Any, job: Job) -> None:
        """Run one job; bookkeeping happens before its last item reaches the caller.

        Stats and the admission count are settled first, so a caller that has
        its answer always sees them updated and may submit again at once.
        """
        final = self._execute(llm, job)
        with self._lock:
            self._admitted -= 1
            self._current = None
        for item in final:
            job.emit(item)

    def _execute(self, llm: Any, job: Job) -> list[object]:
        if job.cancel.is_set():
            self.stats.cancelled += 1
            return []
        if self._closing:
            return [ProviderError("local model is shutting down", upstream_status=503)]
        with self._lock:
            self._current = job
        try:
            if job.should_stop() and job.timed_out:
                raise timeout_error()
            final = [] if job.cancel.is_set() else job.run(llm, job)
        except BaseException as exc:
            self.stats.failed += 1
            return [map_error(exc)]
        finally:
            self.stats.tokens_generated += job.completion_tokens
        if job.cancel.is_set():
            self.stats.cancelled += 1
            return []
        self.stats.completed += 1
        return final


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)
