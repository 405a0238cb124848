"""Server-sent events for chat streams: keep-alives, usage accounting, clean endings.

Headers go out when the first chunk exists or a keep-alive is due, whichever
comes first; until a data chunk has been sent the router may still fall back.
A mid-stream upstream failure ends the stream with an ``error`` event (and no
``[DONE]``), which OpenAI clients raise as an APIError.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from pilothouse.errors import GuardBlockedError, ProviderError, UpstreamError, UpstreamTimeoutError
from pilothouse.gateway.context import RequestContext
from pilothouse.gateway.http_errors import sse_error_event
from pilothouse.gateway.pipeline import estimated_usage, fail, price_usage
from pilothouse.gateway.runtime import Runtime
from pilothouse.providers.base import JSON, Usage
from pilothouse.routing.router import OpenStream

KEEPALIVE = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event(chunk: JSON) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class ManagedStream(StreamingResponse):
    """A StreamingResponse whose cleanup runs even if the body is never iterated."""

    def __init__(
        self, content: AsyncIterator[bytes], on_close: Callable[[], None], headers: dict[str, str]
    ) -> None:
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


async def _await_with_keepalive(task: asyncio.Future[Any], every: float) -> AsyncIterator[bytes]:
    while not task.done():
        done, _ = await asyncio.wait({task}, timeout=every)
        if not done:
            yield KEEPALIVE


class ChatStream:
    """Owns one streamed response from first byte to the ledger row."""

    def __init__(
        self,
        rt: Runtime,
        ctx: RequestContext,
        request: JSON,
        opening: asyncio.Future[OpenStream],
        *,
        on_done: Callable[[RequestContext, JSON | None], None],
        output_filter: Any = None,
    ) -> None:
        self.rt, self.ctx, self.request, self.opening = rt, ctx, request, opening
        opts = request.get("stream_options") or {}
        self.include_usage = bool(opts.get("include_usage"))
        self.keepalive = rt.settings.server.sse_keepalive_s
        self.on_done = on_done
        self.output_filter = output_filter  # guard.stream.StreamGuard: holds back until clean
        self.text: list[str] = []  # every choice's text, in arrival order (usage estimates)
        self.texts: dict[int, list[str]] = {}  # per choice index (``n`` > 1)
        self.finishes: dict[int, str] = {}
        self.usage: Usage | None = None
        self.completed = False
        self.closed = False
        self.opened: OpenStream | None = None
        self.pending: asyncio.Future[Any] | None = None
        self.first_chunk: JSON | None = None

    def _observe(self, chunk: JSON) -> JSON | None:
        """Record text/usage from a chunk; returns what to forward (None = swallow)."""
        usage = chunk.get("usage")
        if usage is not None:
            self.usage = Usage.from_openai(usage) or self.usage
        choices = chunk.get("choices") or []
        for choice in choices:
            index = choice.get("index", 0)
            index = index if isinstance(index, int) else 0
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str):
                self.text.append(content)
                self.texts.setdefault(index, []).append(content)
            if choice.get("finish_reason"):
                self.finishes[index] = choice["finish_reason"]
        if self.first_chunk is None:
            self.first_chunk = chunk
        if usage is not None and not self.include_usage:
            if not choices:
                return None
            chunk = {k: v for k, v in chunk.items() if k != "usage"}
        return chunk

    async def body(self) -> AsyncIterator[bytes]:
        try:
            async for beat in _await_with_keepalive(self.opening, self.keepalive):
                yield beat
            try:
                self.opened = self.opening.result()
            except Exception as exc:
                fail(self.ctx, exc)
                yield sse_error_event(exc)
                return
            self.ctx.ttft_s = self.ctx.elapsed()
            async for data in self._relay(self.opened):
                yield data
        finally:
            self.close()

    async def _relay(self, opened: OpenStream) -> AsyncIterator[bytes]:
        """Forward chunks; whatever is already buffered goes out in one write.

        One pump task reads the upstream into a small queue, so the common case
        (chunks arriving in bursts) costs no timer or task per chunk; a timed
        wait only happens when the upstream is silent, and then yields keep-alives.
        """
        queue: asyncio.Queue[JSON | BaseException | None] = asyncio.Queue(PUMP_BUFFER)
        self.pending = asyncio.ensure_future(_pump(opened.rest, queue))
        out: list[bytes] = []
        item: object = opened.first
        try:
            while True:
                while isinstance(item, dict):
                    forwarded = self._observe(item)
                    if forwarded is not None:
                        if self.output_filter is None:
                            out.append(event(forwarded))
                        else:
                            chunks = await self.output_filter.feed(forwarded)
                            out.extend(event(c) for c in chunks)
                    try:
                        item = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        item = _PENDING
                if out:
                    yield b"".join(out)
                    out.clear()
                if isinstance(item, BaseException):
                    raise item
                if item is None:
                    break
                while True:
                    wait, held = self._wait_for()
                    try:
                        item = await asyncio.wait_for(queue.get(), wait)
                        break
                    except TimeoutError:
                        if held and self.output_filter.hold_deadline() is not None:
                            released = await self.output_filter.expire()
                            if released:
                                yield b"".join(event(c) for c in released)
                            continue
                        yield KEEPALIVE
        except GuardBlockedError as exc:
            fail(self.ctx, exc)
            yield b"".join(out) + sse_error_event(exc)
            return
        except ProviderError as exc:
            opened.target.breaker.record_failure()
            cls = UpstreamTimeoutError if exc.timeout else UpstreamError
            err = cls(f"upstream failed mid-stream: {exc.message}", code="stream_interrupted")
            fail(self.ctx, err)
            yield sse_error_event(err)
            return
        if self.output_filter is not None:
            try:
                tail = await self.output_filter.flush()
            except GuardBlockedError as exc:
                fail(self.ctx, exc)
                yield sse_error_event(exc)
                return
            if tail:
                yield b"".join(event(c) for c in tail)
        if self.usage is None and self.include_usage:
            usage = estimated_usage(self.request, "".join(self.text))
            yield event(self._usage_chunk(usage))
        self.completed = True
        yield DONE

    def _wait_for(self) -> tuple[float, bool]:
        """How long to wait for the upstream: the keep-alive interval, or less when the
        output guard holds text with a ``holdback_timeout_s`` (True: that bound comes first)."""
        deadline = self.output_filter.hold_deadline() if self.output_filter is not None else None
        if deadline is None:
            return self.keepalive, False
        left = max(deadline - time.monotonic(), 0.0)
        return (left, True) if left < self.keepalive else (self.keepalive, False)

    def _usage_chunk(self, usage: Usage) -> JSON:
        first = self.first_chunk or {}
        return {
            "id": first.get("id", self.ctx.request_id),
            "object": "chat.completion.chunk",
            "created": first.get("created", int(time.time())),
            "model": first.get("model", self.ctx.upstream_model),
            "choices": [],
            "usage": usage.to_openai(),
        }

    def close(self) -> None:
        """Idempotent: account for the stream, free the upstream, write the ledger row."""
        if self.closed:
            return
        self.closed = True
        ctx = self.ctx
        for fut in (self.pending, self.opening):
            if fut is not None and not fut.done():
                fut.cancel()
        if self.opened is not None:
            aclose = getattr(self.opened.rest, "aclose", None)
            if aclose is not None:
                self.rt.spawn(_quiet(aclose()))
        if not self.completed and ctx.status == 200:
            ctx.status, ctx.error_type = 499, "client_closed"
        if self.opened is not None:
            usage = self.usage or estimated_usage(self.request, "".join(self.text))
            price_usage(self.rt, ctx, usage)
        body = self.reconstructed() if self.opened is not None else None
        ctx.response_body = body
        self.on_done(ctx, body if self.completed else None)

    def reconstructed(self) -> JSON | None:
        """The stream as one completion body, for the response cache (text only)."""
        first = self.first_chunk or {}
        return {
            "id": first.get("id", self.ctx.request_id),
            "object": "chat.completion",
            "created": first.get("created", int(time.time())),
            "model": first.get("model", self.ctx.upstream_model),
            "choices": [
                {
                    "index": index,
                    "message": {"role": "assistant", "content": "".join(self.texts.get(index, []))},
                    "finish_reason": self.finishes.get(index) or "stop",
                }
                for index in sorted({0, *self.texts, *self.finishes})
            ],
        }

    @property
    def finish_reason(self) -> str | None:
        return self.finishes.get(0)


PUMP_BUFFER = 64  # chunks read ahead of a slow client; then the upstream waits


_PENDING = object()  # nothing buffered yet: wait for the upstream


async def _pump(
    rest: AsyncIterator[JSON], queue: asyncio.Queue[JSON | BaseException | None]
) -> None:
    """Read the upstream stream into ``queue``; ``None`` marks its end, an exception a failure."""
    try:
        async for chunk in rest:
            await queue.put(chunk)
    except ProviderError as exc:
        await queue.put(exc)
        return
    except Exception as exc:  # a provider bug must end the stream cleanly, not hang it
        await queue.put(ProviderError(f"upstream stream failed: {type(exc).__name__}"))
        return
    await queue.put(None)


async def _quiet(coro: Any) -> None:
    with contextlib.suppress(Exception):
        await coro


def replay_chunks(body: JSON, include_usage: bool) -> list[bytes]:
    """A cached completion replayed as SSE events."""
    base = {
        "id": body.get("id"),
        "object": "chat.completion.chunk",
        "created": body.get("created"),
        "model": body.get("model"),
    }
    choices = body.get("choices") if isinstance(body.get("choices"), list) else None
    out: list[bytes] = []
    for i, choice in enumerate(choices or [{}]):
        choice = choice if isinstance(choice, dict) else {}
        index = choice.get("index", i)
        content = (choice.get("message") or {}).get("content") or ""

        def one(delta: JSON, finish: Any = None, index: Any = index) -> bytes:
            return event(
                {**base, "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}
            )

        out.append(one({"role": "assistant", "content": ""}))
        if content:
            out.append(one({"content": content}))
        out.append(one({}, choice.get("finish_reason", "stop")))
    if include_usage:
        out.append(event({**base, "choices": [], "usage": Usage().to_openai()}))
    out.append(DONE)
    return out
