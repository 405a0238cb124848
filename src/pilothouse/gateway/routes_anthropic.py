"""Anthropic-native ingress: ``POST /v1/messages`` and ``/v1/messages/count_tokens``.

Thin handlers over the same pipeline as chat completions (see
:mod:`anthropic_ingress` for the translation). Errors leave in Anthropic's
shape (``{"type": "error", "error": {"type", "message"}}``) so the official
SDK raises its own classes with the gateway's message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from pilothouse.gateway import admission, pipeline, validate
from pilothouse.gateway.anthropic_ingress import EventEncoder, error_type, to_chat, to_message
from pilothouse.gateway.context import RequestContext
from pilothouse.gateway.http_errors import error_response
from pilothouse.gateway.routes_openai import (
    _prepare,
    _stream,
    json_response,
    model_endpoint,
    read_body,
)
from pilothouse.gateway.runtime import Runtime
from pilothouse.gateway.sse import ManagedStream
from pilothouse.gateway.sse_reframe import split_frames
from pilothouse.inputs import JsonLimits
from pilothouse.providers.base import JSON
from pilothouse.tokens import estimate_input

ERROR_KINDS = {
    "rate_limit_error": "rate_limit_error",
    "insufficient_quota": "rate_limit_error",
    "overloaded_error": "overloaded_error",
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
}


async def _to_chat(body: JSON) -> JSON:
    return to_chat(body)


def message_id(ctx: RequestContext) -> str:
    return "msg_" + ctx.request_id.removeprefix("req_")


async def messages(rt: Runtime, ctx: RequestContext, request: Request) -> Response:
    body, route = await _prepare(rt, ctx, request, validate.chat_request, translate=_to_chat)
    if body.get("stream") is True:
        ctx.stream = True
        response = await _stream(rt, ctx, body, route, request)
        encoder = EventEncoder(message_id(ctx), ctx.alias or "")
        if isinstance(response, ManagedStream):
            translated = translate_stream(response.body_iterator, encoder)  # type: ignore[arg-type]
            return ManagedStream(translated, response.on_close, dict(_headers(response)))
        replay = b"".join(translate_frames(bytes(response.body), encoder)[0])  # a cache hit
        return Response(replay, media_type="text/event-stream", headers=dict(_headers(response)))
    completion = await pipeline.chat_completion(rt, ctx, body, route, request.headers)
    return json_response(
        to_message(completion, ctx.usage, message_id(ctx)), pipeline.model_headers(ctx)
    )


def _headers(response: Response) -> dict[str, str]:
    skip = {"content-length", "content-type"}
    return {k: v for k, v in response.headers.items() if k not in skip}


async def translate_stream(
    source: AsyncIterator[bytes], encoder: EventEncoder
) -> AsyncIterator[bytes]:
    """Re-frame the gateway's OpenAI SSE as Anthropic events, write for write."""
    pending = b""
    async for data in source:
        out, pending = translate_frames(pending + data, encoder)
        if out:
            yield b"".join(out)


def translate_frames(data: bytes, encoder: EventEncoder) -> tuple[list[bytes], bytes]:
    """Translate every complete SSE frame in ``data``; returns the output and the remainder."""
    out: list[bytes] = []
    frames, rest = split_frames(data)
    for kind, value in frames:
        if kind == "comment":
            out.append(value)  # keep-alive comments pass through
        elif kind == "done":
            out += encoder.done()
        elif kind == "error":
            error_kind = ERROR_KINDS.get(str(value.get("type")), "api_error")
            body = {"type": "error", "error": {"type": error_kind, "message": value.get("message")}}
            out.append(b"event: error\ndata: " + orjson.dumps(body) + b"\n\n")
        else:
            out += encoder.chunk(value)
    return out, rest


def anthropic_errors(
    endpoint: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Re-shape the gateway's OpenAI error bodies as Anthropic's, keeping status and headers."""

    async def wrapped(request: Request) -> Response:
        response = await endpoint(request)
        if response.status_code < 400 or isinstance(response, StreamingResponse):
            return response
        try:
            error = orjson.loads(response.body).get("error") or {}
        except (orjson.JSONDecodeError, AttributeError):
            return response
        body = {
            "type": "error",
            "error": {"type": error_type(response.status_code), "message": error.get("message")},
        }
        return Response(
            orjson.dumps(body),
            response.status_code,
            headers=_headers(response),
            media_type="application/json",
        )

    return wrapped


async def count_tokens(request: Request) -> Response:
    """An estimate of the prompt's tokens (the gateway has no tokenizer for every provider)."""
    rt: Runtime = request.app.state.runtime
    request_id = pipeline.new_request_id()
    try:
        key = await admission.authenticate(rt, request)
        raw = await read_body(request, rt.settings.server.max_body_bytes)
        body = to_chat(validate.parse_json(raw, JsonLimits.of(rt.settings.server)), counting=True)
        alias = validate.chat_request(body)
        rt.router.route(alias)
        admission.authorize(key, alias)
    except Exception as exc:
        return error_response(exc, request_id)
    headers = {"x-request-id": request_id, "x-pilothouse-estimated": "true"}
    return json_response({"input_tokens": estimate_input(body)}, headers)


def routes() -> list[Route]:
    endpoint = anthropic_errors(model_endpoint("messages", messages))
    return [
        Route("/v1/messages", endpoint, methods=["POST"]),
        Route("/v1/messages/count_tokens", anthropic_errors(count_tokens), methods=["POST"]),
    ]
