"""``POST /v1/completions``: legacy text completions over the chat pipeline.

The prompt becomes one user message (so guards, cache, budgets, usage and
traces are the chat ones), native completions endpoints get the prompt as is,
and the answer leaves in ``text_completion`` shape. A target without a
completions endpoint serves the request only when its alias opts in with
``completions_from_chat: true``: a chat model answering a raw prompt behaves
differently, and nobody should get that silently.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.errors import InvalidRequestError
from pilothouse.gateway import pipeline, validate
from pilothouse.gateway.context import RequestContext
from pilothouse.gateway.routes_openai import _prepare, _stream, json_response, model_endpoint
from pilothouse.gateway.runtime import Runtime
from pilothouse.gateway.sse import DONE, ManagedStream
from pilothouse.gateway.sse_reframe import split_frames
from pilothouse.providers import text_completions as tc
from pilothouse.providers.base import JSON
from pilothouse.routing.router import Route as ModelRoute

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions


def to_chat(body: JSON) -> tuple[JSON, JSON]:
    """The canonical chat request and the completions-only fields of a legacy body."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidRequestError(
            "`prompt` must be a string (one prompt per request; use `n` for several answers)",
            param="prompt",
        )
    chat: JSON = {k: v for k, v in body.items() if k in tc.SHARED}
    chat["messages"] = [{"role": "user", "content": prompt}]
    chat.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    extras = {k: body[k] for k in tc.NATIVE_ONLY if _asks_for(k, body.get(k))}
    return chat, extras


def _asks_for(name: str, value: object) -> bool:
    """Whether a completions-only field asks for anything (`best_of: 1`, `echo: false` do not)."""
    if value is None or value is False:
        return False
    return not (name == "best_of" and value == 1 and value is not True)


def check_targets(route: ModelRoute, extras: JSON) -> None:
    """Refuse a request some target of the alias could only serve by an unasked translation."""
    translated = [t for t in route.targets if not tc.native_completions(t.provider)]
    if not translated:
        return
    if not route.config.completions_from_chat:
        raise InvalidRequestError(
            f"model `{route.alias}` has no completions endpoint "
            f"({translated[0].label}); use /v1/chat/completions, or set "
            f"`models.{route.alias}.completions_from_chat: true` to translate",
            param="model",
        )
    if extras:
        names = ", ".join(f"`{k}`" for k in extras)
        raise InvalidRequestError(
            f"{names} need a native completions endpoint; model `{route.alias}` "
            "is translated to chat",
            param=next(iter(extras)),
        )


async def completions(rt: Runtime, ctx: RequestContext, request: Request) -> Response:
    async def translate(body: JSON) -> JSON:
        chat, ctx.completion = to_chat(body)
        alias = chat.get("model")
        if isinstance(alias, str) and alias in rt.router.routes:  # before anything is reserved
            check_targets(rt.router.routes[alias], ctx.completion)
        return chat

    body, route = await _prepare(rt, ctx, request, validate.chat_request, translate=translate)
    if body.get("stream") is True:
        ctx.stream = True
        response = await _stream(rt, ctx, body, route, request)
        if isinstance(response, ManagedStream):
            headers = dict(_headers(response))
            return ManagedStream(reframe(response.body_iterator), response.on_close, headers)  # type: ignore[arg-type]
        replay = b"".join(reframe_frames(bytes(response.body))[0])  # a cache hit
        return Response(replay, media_type="text/event-stream", headers=dict(_headers(response)))
    result = await pipeline.chat_completion(rt, ctx, body, route, request.headers)
    return json_response(tc.chat_to_text(result), pipeline.model_headers(ctx))


def _headers(response: Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in ("content-length",)}


async def reframe(source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The chat SSE re-framed as ``text_completion`` chunks, write for write."""
    pending = b""
    async for data in source:
        out, pending = reframe_frames(pending + data)
        if out:
            yield b"".join(out)


def reframe_frames(data: bytes) -> tuple[list[bytes], bytes]:
    out: list[bytes] = []
    frames, rest = split_frames(data)
    for kind, value in frames:
        if kind == "comment":
            out.append(value)
        elif kind == "done":
            out.append(DONE)
        elif kind == "error":
            out.append(b"data: " + orjson.dumps({"error": value}) + b"\n\n")
        else:
            chunk = tc.chat_chunk_to_text(value)
            if chunk is not None:
                out.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
    return out, rest


def routes() -> list[Route]:
    endpoint = model_endpoint("completions", completions)
    return [
        Route("/v1/completions", endpoint, methods=["POST"]),
        Route("/completions", endpoint, methods=["POST"]),
    ]
