"""The OpenAI Responses API: ``POST /v1/responses``, ``GET``/``DELETE /v1/responses/{id}``.

Every request is translated to chat completions (:mod:`responses_translate`)
— a target whose provider has the Responses API gets it back as a native
``/responses`` call at its edge (:mod:`pilothouse.providers.responses_native`) —
and runs the one pipeline: auth, limits, budgets, cache, routing and
fallbacks to any provider, one usage record, one trace. ``store`` (default
true) keeps the answer and its conversation so ``previous_response_id`` can
continue it; stored responses belong to the key that created them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from pilothouse.errors import InvalidRequestError
from pilothouse.gateway import admission, pipeline, validate
from pilothouse.gateway.context import RequestContext
from pilothouse.gateway.http_errors import error_response
from pilothouse.gateway.responses_translate import (
    EventEncoder,
    assistant_turn,
    output_items,
    response_object,
    to_chat,
)
from pilothouse.gateway.routes_openai import _prepare, _stream, json_response, model_endpoint
from pilothouse.gateway.runtime import Runtime
from pilothouse.gateway.sse import ManagedStream
from pilothouse.gateway.sse_reframe import split_frames
from pilothouse.providers.base import JSON
from pilothouse.providers.responses_native import NATIVE_ONLY

log = logging.getLogger("pilothouse.gateway")


class Exchange:
    """What one request carries from translation to storage."""

    def __init__(self, rt: Runtime, ctx: RequestContext) -> None:
        self.rt, self.ctx = rt, ctx
        self.original: JSON = {}
        self.conversation: list[JSON] = []

    async def translate(self, body: JSON) -> JSON:
        store, previous = body.get("store"), body.get("previous_response_id")
        if store is not None and not isinstance(store, bool):
            raise InvalidRequestError("`store` must be a boolean", param="store")
        history: list[JSON] = []
        if previous is not None:
            if not isinstance(previous, str) or not previous:
                raise InvalidRequestError(
                    "`previous_response_id` must be a response id", param="previous_response_id"
                )
            assert self.ctx.key is not None  # authenticated before translation
            _, history = await self.rt.responses.load(previous, self.ctx.key.id)
        chat, self.conversation = to_chat(body, history)
        # Targets with a Responses API of their own get these as the client sent them.
        self.ctx.responses = {k: body[k] for k in NATIVE_ONLY if body.get(k) is not None}
        self.original = body
        return chat

    @property
    def response_id(self) -> str:
        return "resp_" + self.ctx.request_id.removeprefix("req_")

    async def keep(self, response: JSON, items: list[JSON]) -> JSON:
        """Store the answer when asked to; a store failure never loses the answer itself."""
        if not self.original.get("store", True) or self.ctx.key is None:
            return response
        try:
            await self.rt.responses.save(
                key_id=self.ctx.key.id,
                alias=self.ctx.alias or "",
                conversation=[*self.conversation, *assistant_turn(items)],
                response=response,
            )
        except Exception as exc:
            log.warning("response %s not stored: %s", response["id"], type(exc).__name__)
            response = {**response, "store": False}
        return response


async def create(rt: Runtime, ctx: RequestContext, request: Request) -> Response:
    exchange = Exchange(rt, ctx)
    chat, route = await _prepare(
        rt, ctx, request, validate.chat_request, translate=exchange.translate
    )
    if chat.get("stream") is True:
        ctx.stream = True
        return await _streamed(rt, ctx, chat, route, request, exchange)
    completion = await pipeline.chat_completion(rt, ctx, chat, route, request.headers)
    items, finish = output_items(exchange.response_id, completion)
    body = response_object(
        exchange.response_id,
        exchange.original,
        model=str(completion.get("model") or ctx.alias),
        output=items,
        usage=ctx.usage,
        status="completed",
        finish_reason=finish,
    )
    body = await exchange.keep(body, items)
    return json_response(body, pipeline.model_headers(ctx))


async def _streamed(
    rt: Runtime, ctx: RequestContext, chat: JSON, route: Any, request: Request, exchange: Exchange
) -> Response:
    response = await _stream(rt, ctx, chat, route, request)
    encoder = EventEncoder(exchange.response_id, exchange.original, ctx.alias or "")
    headers = {
        k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")
    }
    if isinstance(response, ManagedStream):
        events = _events(response.body_iterator, encoder, exchange)  # type: ignore[arg-type]
        return ManagedStream(events, response.on_close, headers)

    # A cache hit: the whole stream is at hand and the request is already accounted for
    # when this returns, so it must not be a ManagedStream (that would hand off `finish`).
    replay = _events(_once(bytes(response.body)), encoder, exchange)
    return StreamingResponse(replay, media_type="text/event-stream", headers=headers)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _events(
    source: AsyncIterator[bytes], encoder: EventEncoder, exchange: Exchange
) -> AsyncIterator[bytes]:
    yield b"".join(encoder.start())
    pending = b""
    async for data in source:
        frames, pending = split_frames(pending + data)
        out: list[bytes] = []
        for kind, value in frames:
            if kind == "comment":
                out.append(value)
            elif kind == "chunk":
                out += encoder.chunk(value)
            elif kind == "error":
                out += encoder.failed(
                    str(value.get("code") or "server_error"), str(value.get("message"))
                )
            else:
                final = await exchange.keep(encoder.final(), encoder.items)
                encoder.body = {**encoder.body, "store": final.get("store", True)}
                out += encoder.done()
        if out:
            yield b"".join(out)


async def _owner(rt: Runtime, request: Request) -> str:
    key = await admission.authenticate(rt, request)
    return key.id


async def retrieve(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    request_id = pipeline.new_request_id()
    try:
        key_id = await _owner(rt, request)
        body, _ = await rt.responses.load(request.path_params["id"], key_id)
    except Exception as exc:
        return error_response(exc, request_id)
    return json_response(body, {"x-request-id": request_id})


async def delete(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    request_id = pipeline.new_request_id()
    response_id = request.path_params["id"]
    try:
        await rt.responses.remove(response_id, await _owner(rt, request))
    except Exception as exc:
        return error_response(exc, request_id)
    body = {"id": response_id, "object": "response.deleted", "deleted": True}
    return json_response(body, {"x-request-id": request_id})


def routes() -> list[Route]:
    return [
        Route("/v1/responses", model_endpoint("responses", create), methods=["POST"]),
        Route("/v1/responses/{id}", retrieve, methods=["GET"]),
        Route("/v1/responses/{id}", delete, methods=["DELETE"]),
    ]
