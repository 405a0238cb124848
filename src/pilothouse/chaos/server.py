"""``pilothouse chaos serve``: the chaos plan behind a real OpenAI-compatible HTTP API.

Faults happen on the wire (a real connection reset, a real stalled socket, a
real non-JSON body) so the ``openai`` provider's error handling is exercised
exactly as a flaky production upstream would exercise it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from pilothouse.chaos import responses
from pilothouse.chaos.plan import ChaosConfig, ChaosPlan, Outcome
from pilothouse.errors import InvalidRequestError
from pilothouse.gateway import responses_translate as rt
from pilothouse.ids import ulid
from pilothouse.providers import text_completions
from pilothouse.providers.base import JSON, Usage

PLAN_KEY = web.AppKey("plan", ChaosPlan)


def _error(status: int, message: str, retry_after: float | None) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    body = {"error": {"message": message, "type": "chaos_error", "code": str(status)}}
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


async def _pre_body(
    request: web.Request, outcome: Outcome, cfg: ChaosConfig
) -> web.Response | None:
    if outcome.latency_s:
        await asyncio.sleep(outcome.latency_s)
    if outcome.kind == "timeout":
        await asyncio.sleep(3600)
    if outcome.kind == "error":
        return _error(outcome.status, "chaos injected error", cfg.retry_after_s)
    if outcome.kind == "reset":
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError
    if outcome.kind == "malformed":
        return web.Response(status=200, body=b"<html>not json", content_type="application/json")
    return None


def _same(value: Any) -> Any:
    return value


def _prompt_as_chat(body: JSON) -> JSON:
    prompt = body.get("prompt")
    text = prompt if isinstance(prompt, str) else ""
    return {**body, "messages": [{"role": "user", "content": text}]}


async def _answer(
    request: web.Request,
    to_chat: Callable[[JSON], JSON],
    reshape: Callable[[JSON], JSON],
    reshape_chunk: Callable[[JSON], JSON | None],
) -> web.StreamResponse:
    """A chat-plan answer, faults included, in the endpoint's own shape."""
    plan = request.app[PLAN_KEY]
    cfg = plan.config
    body = orjson.loads(await request.read())
    outcome = plan.next()
    early = await _pre_body(request, outcome, cfg)
    if early is not None:
        return early
    model = str(body.get("model", "chaos"))
    chat = to_chat(body)
    if not body.get("stream"):
        return web.Response(
            body=orjson.dumps(reshape(responses.completion(cfg, chat, model))),
            content_type="application/json",
        )
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for i, chunk in enumerate(responses.chunks(cfg, chat, model)):
        if i == outcome.after_chunks and outcome.kind == "cut":
            if request.transport is not None:
                request.transport.abort()
            return resp
        if i == outcome.after_chunks and outcome.kind == "stall":
            await asyncio.sleep(cfg.stall_s)
        if "usage" in chunk and not include_usage:
            continue
        if cfg.chunk_delay_ms:
            await asyncio.sleep(cfg.chunk_delay_ms / 1000.0)
        shaped = reshape_chunk(chunk)
        if shaped is not None:
            await resp.write(b"data: " + orjson.dumps(shaped) + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _answer(request, _same, _same, _same)


async def completions(request: web.Request) -> web.StreamResponse:
    """Legacy text completions: the chat plan's answer to the prompt, in completions shape."""
    return await _answer(
        request, _prompt_as_chat, text_completions.chat_to_text, text_completions.chat_chunk_to_text
    )


async def responses_api(request: web.Request) -> web.StreamResponse:
    """The Responses API: the chat plan's answer as a ``response`` object or its events."""
    plan = request.app[PLAN_KEY]
    body = orjson.loads(await request.read())
    early = await _pre_body(request, plan.next(), plan.config)
    if early is not None:
        return early
    try:
        chat, _ = rt.to_chat(body, [])
    except InvalidRequestError as exc:
        return _error(400, exc.message, None)
    model = str(body.get("model", "chaos"))
    response_id = "resp_chaos" + ulid()
    if not body.get("stream"):
        answer = responses.completion(plan.config, chat, model)
        items, finish = rt.output_items(response_id, answer)
        usage = Usage.from_openai(answer.get("usage"))
        shaped = rt.response_object(
            response_id, body, model=model, output=items, usage=usage,
            status="completed", finish_reason=finish,
        )  # fmt: skip
        return web.Response(body=orjson.dumps(shaped), content_type="application/json")
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    encoder = rt.EventEncoder(response_id, body, model)
    await resp.write(b"".join(encoder.start()))
    for chunk in responses.chunks(plan.config, chat, model):
        await resp.write(b"".join(encoder.chunk(chunk)))
    await resp.write(b"".join(encoder.done()))
    await resp.write_eof()
    return resp


def _json_endpoint(
    make: Callable[[ChaosConfig, JSON, str], JSON],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A one-shot JSON endpoint (embeddings, moderations) behind the same fault plan."""

    async def handler(request: web.Request) -> web.Response:
        plan = request.app[PLAN_KEY]
        body = orjson.loads(await request.read())
        early = await _pre_body(request, plan.next(), plan.config)
        if early is not None:
            return early
        payload = make(plan.config, body, str(body.get("model", "chaos")))
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    return handler


embeddings = _json_endpoint(responses.embeddings)
moderations = _json_endpoint(responses.moderation)


async def models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": "chaos", "object": "model"}]})


def build_chaos_app(config: ChaosConfig) -> web.Application:
    app = web.Application()
    app[PLAN_KEY] = ChaosPlan(config)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/responses", responses_api)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/moderations", moderations)
    app.router.add_get("/v1/models", models)
    return app
