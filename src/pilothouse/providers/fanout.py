"""``n > 1`` for providers that return one choice: n concurrent calls, one merged answer.

Providers whose API takes ``n`` (OpenAI-compatible, Azure) declare
``native_n = True`` and get the request unchanged. For every other provider the
request is sent ``n`` times with ``n`` removed, concurrently, and the answers
become the choices of one completion in order. Usage is the sum of the calls,
which is what they really cost: each call pays for the prompt again. When the
request carries a ``seed``, call ``i`` uses ``seed + i`` so the choices differ
but stay reproducible. One failed call fails the whole request (the router may
then retry or fall back), and the other calls are cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from pilothouse.providers.base import JSON, ChatResult, Provider, Usage


def choice_count(request: JSON) -> int:
    """The validated ``n`` (1 when absent)."""
    n = request.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1


def fans_out(provider: Any, request: JSON) -> bool:
    """Whether ``provider`` needs ``n`` separate calls for this request."""
    return choice_count(request) > 1 and not getattr(provider, "native_n", False)


def single_requests(request: JSON) -> list[JSON]:
    """The ``n`` one-choice requests a fan-out sends."""
    n = choice_count(request)
    base = {k: v for k, v in request.items() if k != "n"}
    seed = base.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        return [{**base, "seed": seed + i} for i in range(n)]
    return [dict(base) for _ in range(n)]


async def chat_choices(
    provider: Provider, request: JSON, model: str, deadline: float
) -> ChatResult:
    """``provider.chat`` with ``n`` honoured, natively or by fan-out."""
    if not fans_out(provider, request):
        return await provider.chat(request, model, deadline)
    calls = [
        asyncio.ensure_future(provider.chat(one, model, deadline))
        for one in single_requests(request)
    ]
    try:
        results = await asyncio.gather(*calls)
    except BaseException:
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        raise
    return merge(results)


def merge(results: list[ChatResult]) -> ChatResult:
    """One completion whose choices are the calls' first choices, usage summed."""
    usage = Usage()
    choices: list[JSON] = []
    for index, result in enumerate(results):
        usage = _add(usage, result.usage)
        first = (result.body.get("choices") or [{}])[0]
        choices.append({**first, "index": index})
    body = {**results[0].body, "choices": choices}
    if not usage.estimated or usage.input_tokens or usage.output_tokens:
        body["usage"] = usage.to_openai()
    return ChatResult(body, usage)


def stream_choices(
    provider: Provider, request: JSON, model: str, deadline: float
) -> AsyncIterator[JSON]:
    """``provider.stream_chat`` with ``n`` honoured, natively or by merging n streams."""
    if not fans_out(provider, request):
        return provider.stream_chat(request, model, deadline)
    return _merged([provider.stream_chat(one, model, deadline) for one in single_requests(request)])


async def _merged(streams: list[AsyncIterator[JSON]]) -> AsyncIterator[JSON]:
    """Interleave one-choice streams as choices ``0..n-1`` of one stream, usage summed at the end.

    Chunks keep their arrival order; each is re-labelled with its stream's
    index and the first stream's id, so a client sees one completion. The
    first failure ends the merged stream (and closes the others).
    """
    queue: asyncio.Queue[tuple[int, JSON | BaseException | None]] = asyncio.Queue()

    async def pump(index: int, stream: AsyncIterator[JSON]) -> None:
        try:
            async for chunk in stream:
                await queue.put((index, chunk))
        except BaseException as exc:  # delivered to the reader, which re-raises it
            await queue.put((index, exc))
            return
        await queue.put((index, None))

    tasks = [asyncio.ensure_future(pump(i, s)) for i, s in enumerate(streams)]
    usage: Usage | None = None
    ident: JSON = {}
    running = len(tasks)
    try:
        while running:
            index, item = await queue.get()
            if item is None:
                running -= 1
                continue
            if isinstance(item, BaseException):
                raise item
            if not ident:
                ident = {k: item[k] for k in ("id", "created", "model") if k in item}
            got = Usage.from_openai(item.get("usage"))
            if got is not None:
                usage = got if usage is None else _add(usage, got)
            choices = [{**c, "index": index} for c in item.get("choices") or []]
            if choices:
                out = {**item, **ident, "choices": choices}
                out.pop("usage", None)  # summed into one usage chunk at the end
                yield out
        if usage is not None:
            yield {
                **ident,
                "object": "chat.completion.chunk",
                "choices": [],
                "usage": usage.to_openai(),
            }
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for stream in streams:
            closer = getattr(stream, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(
        a.input_tokens + b.input_tokens,
        a.output_tokens + b.output_tokens,
        a.cached_input_tokens + b.cached_input_tokens,
        a.estimated or b.estimated,
    )
