"""``local_embeddings``: the bundled all-MiniLM-L6-v2 model behind ``/v1/embeddings``.

The encoder lives on one dedicated thread (onnxruntime sessions are
thread-safe, but one owner keeps the two cores busy with one batch at a time
instead of several competing ones). Requests wait in a bounded queue and are
refused with a retryable error when it is full, so a burst sheds to fallbacks
rather than queueing for minutes. Jobs already waiting when the thread picks
one up are merged into one forward pass (micro-batching).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import queue
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pilothouse.errors import ConfigError, InvalidRequestError, ProviderError
from pilothouse.providers.base import JSON, BaseProvider, EmbedResult, ProviderConfig, Usage

if TYPE_CHECKING:
    from pilothouse.providers.minilm import MiniLM

MODELS = ("all-minilm-l6-v2",)


class LocalEmbeddingsConfig(ProviderConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    model: str = "all-minilm-l6-v2"
    threads: int | None = None
    max_queue: int = 64
    max_batch: int = 64

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.max_queue < 1 or self.max_batch < 1:
            raise ValueError("max_queue and max_batch must be >= 1")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 or null (auto), got {self.threads}")


@dataclass(slots=True)
class _Job:
    texts: list[str]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[tuple[np.ndarray, int]]
    done: bool = field(default=False)


_STOP = object()


class LocalEmbeddingsProvider(BaseProvider):
    config_type = LocalEmbeddingsConfig
    config: LocalEmbeddingsConfig

    def __init__(self, name: str, config: LocalEmbeddingsConfig) -> None:
        super().__init__(name, config)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=config.max_queue)
        self._thread: threading.Thread | None = None
        self._model: MiniLM | None = None

    @classmethod
    def preflight(cls, config: LocalEmbeddingsConfig) -> None:
        from pilothouse.providers.minilm import model_dir

        model_dir()

    async def start(self) -> None:
        if self._thread is not None:
            return
        from pilothouse.providers.minilm import MiniLM

        try:
            self._model = await asyncio.to_thread(MiniLM, None, self.config.threads)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"cannot load the local embedding model: {exc}") from None
        self._thread = threading.Thread(target=self._run, name=f"embed-{self.name}", daemon=True)
        self._thread.start()

    async def aclose(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(self._queue.put, _STOP)
            await asyncio.to_thread(thread.join)

    async def embed(self, request: JSON, model: str, deadline: float) -> EmbedResult:
        texts = _texts(request)
        fmt = request.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise InvalidRequestError(
                "`encoding_format` must be float or base64", param="encoding_format"
            )
        dims = request.get("dimensions")
        if dims is not None and dims != 384:
            raise InvalidRequestError(f"{model} has 384 dimensions", param="dimensions")
        if self._thread is None:
            raise ProviderError(f"local embedder {self.name!r} is not running", upstream_status=503)
        loop = asyncio.get_running_loop()
        job = _Job(texts, loop, loop.create_future())
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise ProviderError(
                f"local embedder {self.name!r} has {self.config.max_queue} jobs waiting",
                upstream_status=503,
            ) from None
        try:
            vectors, tokens = await asyncio.wait_for(asyncio.shield(job.future), _left(deadline))
        except TimeoutError:
            raise ProviderError(
                "local embedder did not finish before the deadline", timeout=True
            ) from None
        finally:
            job.done = True
        data = [
            {"object": "embedding", "index": i, "embedding": _encode(vec, fmt)}
            for i, vec in enumerate(vectors)
        ]
        usage = Usage(tokens, 0)
        body = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return EmbedResult(body, usage)

    def _run(self) -> None:
        """The model thread: take a job, merge whatever else waits, run one pass."""
        model = self._model
        assert model is not None
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            jobs = [first]
            size = len(first.texts)  # type: ignore[attr-defined]
            while size < self.config.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    self._queue.put(_STOP)
                    break
                jobs.append(nxt)
                size += len(nxt.texts)  # type: ignore[attr-defined]
            live = [j for j in jobs if isinstance(j, _Job) and not j.done]
            if not live:
                continue
            texts = [t for j in live for t in j.texts]
            try:
                vectors, _ = model.encode(texts)
                counts = model.count_tokens(texts)
            except Exception as exc:  # pragma: no cover - surfaced to each caller
                for j in live:
                    _resolve(j, exc)
                continue
            at = 0
            for j in live:
                n = len(j.texts)
                _resolve(j, (vectors[at : at + n], sum(counts[at : at + n])))
                at += n


def _left(deadline: float) -> float:
    import time

    return max(deadline - time.monotonic(), 0.001)


def _resolve(job: _Job, value: object) -> None:
    def settle() -> None:
        if job.future.done():
            return
        if isinstance(value, BaseException):
            job.future.set_exception(ProviderError(f"local embedder failed: {value}"))
        else:
            job.future.set_result(value)  # type: ignore[arg-type]

    with contextlib.suppress(RuntimeError):  # the caller's loop is gone
        job.loop.call_soon_threadsafe(settle)


def _texts(request: JSON) -> list[str]:
    value = request.get("input")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidRequestError(
            "the local embedder takes `input` as a string or an array of strings "
            "(token arrays are not supported)",
            param="input",
        )
    return value


def _encode(vector: np.ndarray, fmt: str) -> list[float] | str:
    if fmt == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return [float(x) for x in vector]
