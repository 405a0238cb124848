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
        got = result.usage
        usage = Usage(
            usage.input_tokens + got.input_tokens,
            usage.output_tokens + got.output_tokens,
            usage.cached_input_tokens + got.cached_input_tokens,
            usage.estimated or got.estimated,
        )
        first = (result.body.get("choices") or [{}])[0]
        choices.append({**first, "index": index})
    body = {**results[0].body, "choices": choices}
    if not usage.estimated or usage.input_tokens or usage.output_tokens:
        body["usage"] = usage.to_openai()
    return ChatResult(body, usage)
