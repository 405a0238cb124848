"""``pilothouse chaos serve``: the chaos plan behind a real OpenAI-compatible HTTP API.

Faults happen on the wire (a real connection reset, a real stalled socket, a
real non-JSON body) so the ``openai`` provider's error handling is exercised
exactly as a flaky production upstream would exercise it.
"""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from pilothouse.chaos import responses
from pilothouse.chaos.plan import ChaosConfig, ChaosPlan, Outcome
from pilothouse.providers import text_completions

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


async def chat_completions(request: web.Request) -> web.StreamResponse:
    plan = request.app[PLAN_KEY]
    cfg = plan.config
    body = orjson.loads(await request.read())
    outcome = plan.next()
    early = await _pre_body(request, outcome, cfg)
    if early is not None:
        return early
    model = str(body.get("model", "chaos"))
    if not body.get("stream"):
        return web.Response(
            body=orjson.dumps(responses.completion(cfg, body, model)),
            content_type="application/json",
        )
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for i, chunk in enumerate(responses.chunks(cfg, body, model)):
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
        await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def completions(request: web.Request) -> web.StreamResponse:
    """Legacy text completions: the chat plan's answer to the prompt, in completions shape."""
    plan = request.app[PLAN_KEY]
    body = orjson.loads(await request.read())
    outcome = plan.next()
    early = await _pre_body(request, outcome, plan.config)
    if early is not None:
        return early
    model = str(body.get("model", "chaos"))
    prompt = body.get("prompt")
    chat = {
        **body,
        "messages": [{"role": "user", "content": prompt if isinstance(prompt, str) else ""}],
    }
    if not body.get("stream"):
        payload = text_completions.chat_to_text(responses.completion(plan.config, chat, model))
        return web.Response(body=orjson.dumps(payload), content_type="application/json")
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for chunk in responses.chunks(plan.config, chat, model):
        if "usage" in chunk and not include_usage:
            continue
        text_chunk = text_completions.chat_chunk_to_text(chunk)
        if text_chunk is not None:
            await resp.write(b"data: " + orjson.dumps(text_chunk) + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def moderations(request: web.Request) -> web.Response:
    plan = request.app[PLAN_KEY]
    body = orjson.loads(await request.read())
    outcome = plan.next()
    early = await _pre_body(request, outcome, plan.config)
    if early is not None:
        return early
    payload = responses.moderation(plan.config, body, str(body.get("model", "chaos")))
    return web.Response(body=orjson.dumps(payload), content_type="application/json")


async def embeddings(request: web.Request) -> web.Response:
    plan = request.app[PLAN_KEY]
    body = orjson.loads(await request.read())
    outcome = plan.next()
    early = await _pre_body(request, outcome, plan.config)
    if early is not None:
        return early
    payload = responses.embeddings(plan.config, body, str(body.get("model", "chaos")))
    return web.Response(body=orjson.dumps(payload), content_type="application/json")


async def models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": "chaos", "object": "model"}]})


def build_chaos_app(config: ChaosConfig) -> web.Application:
    app = web.Application()
    app[PLAN_KEY] = ChaosPlan(config)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/moderations", moderations)
    app.router.add_get("/v1/models", models)
    return app
