"""OpenAI-compatible routes: thin handlers over the pipeline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.errors import (
    OverloadedError,
    PayloadTooLargeError,
    RequestTimeoutError,
)
from pilothouse.gateway import (
    admission,
    intake,
    pipeline,
    rollout_routing,
    route_policy,
    semantic_stage,
    validate,
)
from pilothouse.gateway.context import RequestContext
from pilothouse.gateway.http_errors import error_response
from pilothouse.gateway.runtime import Runtime
from pilothouse.gateway.sse import SSE_HEADERS, ChatStream, ManagedStream, replay_chunks
from pilothouse.inputs import JsonLimits, metadata_header
from pilothouse.providers.base import JSON
from pilothouse.rag import principal
from pilothouse.releases import serving
from pilothouse.telemetry.tracecontext import parse_traceparent


def json_response(body: Any, headers: dict[str, str] | None = None, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing early (413) when it is larger than ``limit``.

    The whole read has one deadline, ``server.body_timeout_s`` (408 past it), so a
    client that sends headers and then trickles or stalls cannot hold a task forever.
    """
    declared = request.headers.get("content-length")
    # Digit count first: int() of thousands of digits is slow, and refused past 4300.
    if (
        declared is not None
        and declared.isascii()
        and declared.isdigit()
        and (len(declared.lstrip("0")) > 18 or int(declared) > limit)
    ):
        shown = declared if len(declared) <= 24 else declared[:20] + "…"
        raise PayloadTooLargeError(f"request body is {shown} bytes; the limit is {limit}")
    timeout = request.app.state.runtime.settings.server.body_timeout_s
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLargeError(f"request body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeoutError(
            f"the request body was not received within {timeout:g}s "
            f"({size} bytes arrived); send it faster or in a smaller request"
        ) from None
    return b"".join(chunks)


def request_metadata(request: Request) -> dict[str, Any] | None:
    """The ``x-pilothouse-metadata`` header, within the JSON depth and metadata size limits."""
    limits = JsonLimits.of(request.app.state.runtime.settings.server)
    return metadata_header(request.headers.get("x-pilothouse-metadata"), limits)


Handler = Callable[[Runtime, RequestContext, Request], Awaitable[Response]]


def model_endpoint(endpoint: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler with draining refusal, slot release and exactly-once finish.

    Capacity (per-key and gateway slots) is taken inside ``_prepare`` once the
    key is known and the body is in; see ``gateway/intake.py``.
    """

    async def endpoint_fn(request: Request) -> Response:
        rt: Runtime = request.app.state.runtime
        ctx = RequestContext(request_id=pipeline.new_request_id(), endpoint=endpoint)
        ctx.trace_id, ctx.parent_span_id = parse_traceparent(request.headers.get("traceparent"))
        if rt.draining:
            exc = OverloadedError("the gateway is shutting down; retry shortly")
            pipeline.fail(ctx, exc)
            pipeline.finish(rt, ctx)
            return error_response(exc, ctx.request_id)
        handed_off = False
        try:
            response = await handler(rt, ctx, request)
            handed_off = isinstance(response, ManagedStream)
            return response
        except ClientDisconnect:
            # The caller left mid-body: nobody to answer, nothing to log as our error.
            ctx.status, ctx.error_type = 499, "client_closed"
            return Response(status_code=499)
        except asyncio.CancelledError:
            ctx.status, ctx.error_type = 499, "client_closed"  # the caller left; not our error
            raise
        except Exception as exc:
            pipeline.fail(ctx, exc)
            pipeline.scrub_failure(rt, ctx, exc)
            response = error_response(exc, ctx.request_id)
            if ctx.attempts or ctx.guards is not None:
                response.headers.update(pipeline.model_headers(ctx))
            return response
        finally:
            if not handed_off:
                pipeline.finish(rt, ctx)
                intake.release(rt, ctx)

    return endpoint_fn


async def _prepare(
    rt: Runtime,
    ctx: RequestContext,
    request: Request,
    check: Callable[[JSON], str],
    translate: Callable[[JSON], Awaitable[JSON]] | None = None,
) -> tuple[JSON, Any]:
    """Auth, body, validation, route and admission; ``translate`` maps other API shapes in."""
    ctx.key = await admission.authenticate(rt, request)
    # Verified once per request; bundle retrieval reads it from ctx.
    ctx.principal = principal.parse(rt.settings.rag.principal, request.headers)
    intake.take_key_slot(rt, ctx)
    raw = await read_body(request, rt.settings.server.max_body_bytes)
    intake.take_gateway_slot(rt, ctx)
    body = validate.parse_json(raw, JsonLimits.of(rt.settings.server))
    if translate is not None:
        body = await translate(body)
    ctx.metadata = request_metadata(request)  # before rollouts: sticky ids live here
    return await admit_body(rt, ctx, body, check)


async def admit_body(
    rt: Runtime, ctx: RequestContext, body: JSON, check: Callable[[JSON], str]
) -> tuple[JSON, Any]:
    """The body's stages, shared by live requests and batch lines (``ctx.key`` is set):
    prompt rendering, validation, model access, routing policy, rollouts, admission."""
    assert ctx.key is not None
    if check is validate.chat_request and serving.is_prompt(body):
        body = await rollout_routing.prompt_request(rt, ctx, body)
    ctx.request_body = body
    ctx.alias = check(body)
    rt.router.route(ctx.alias)
    admission.authorize(ctx.key, ctx.alias)
    # Rules pick the alias, a rollout on it splits it, degraded mode replaces it.
    route = await route_policy.select(rt, ctx, body, chat=check is validate.chat_request)
    await admission.admit(rt, ctx, body, route)
    ctx.admitted_at = time.perf_counter()
    return body, route


async def chat(rt: Runtime, ctx: RequestContext, request: Request) -> Response:
    body, route = await _prepare(rt, ctx, request, validate.chat_request)
    if body.get("stream") is True:
        ctx.stream = True
        return await _stream(rt, ctx, body, route, request)
    result = await pipeline.chat_completion(rt, ctx, body, route, request.headers)
    return json_response(result, pipeline.model_headers(ctx))


async def _stream(
    rt: Runtime, ctx: RequestContext, body: JSON, route: Any, request: Request
) -> Response:
    body = await rt.guards.check_chat_input(ctx, body)  # before the cache and the router
    refused = pipeline.guard_refuses_cache(ctx) or semantic_stage.refuses(route, body)
    ttl = None if refused else pipeline.cache_ttl(route, request.headers)
    key = pipeline.exact_key(rt, ctx, route, body) if ttl is not None else None
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    if key is not None:
        hit = await pipeline.cached_completion(rt, ctx, key)
        ctx.cache_checked_at = time.perf_counter()
        if hit is not None:
            hit = await rt.guards.check_chat_output(ctx, hit)
            ctx.response_body = hit
            ctx.ttft_s = ctx.elapsed()
            return Response(
                b"".join(replay_chunks(hit, include_usage)),
                media_type="text/event-stream",
                headers={**SSE_HEADERS, **pipeline.model_headers(ctx)},
            )
    pending = None
    if ttl is not None:  # exact miss: the semantic tier, when the alias opts in
        hit, pending = await semantic_stage.lookup(rt, ctx, body, route, ttl)
        ctx.cache_checked_at = time.perf_counter()
        if hit is not None:
            hit = await rt.guards.check_chat_output(ctx, hit)
            ctx.response_body = hit
            ctx.ttft_s = ctx.elapsed()
            return Response(
                b"".join(replay_chunks(hit, include_usage)),
                media_type="text/event-stream",
                headers={**SSE_HEADERS, **pipeline.model_headers(ctx)},
            )

    output_guard = rt.guards.stream_guard(ctx)

    def on_done(done_ctx: RequestContext, completed: JSON | None) -> None:
        if output_guard is not None and done_ctx.response_body is not None:
            done_ctx.response_body = with_text(done_ctx.response_body, output_guard.text)
            if completed is not None:
                completed = done_ctx.response_body
        cacheable = completed is not None and (
            completed["choices"][0]["finish_reason"] != "tool_calls"
        )
        if ttl is not None and completed is not None and cacheable:
            rt.spawn(
                pipeline.store_answer(
                    rt, done_ctx, body, key, ttl, pending, completed, done_ctx.usage
                )
            )
        pipeline.finish(rt, done_ctx)
        intake.release(rt, done_ctx)

    opening = asyncio.ensure_future(pipeline.open_stream(rt, ctx, body))
    done, _ = await asyncio.wait({opening}, timeout=rt.settings.server.sse_keepalive_s)
    if done and opening.exception() is not None:
        raise opening.exception()  # type: ignore[misc]
    stream = ChatStream(rt, ctx, body, opening, on_done=on_done, output_filter=output_guard)
    headers = {**SSE_HEADERS, **pipeline.model_headers(ctx)}
    return ManagedStream(stream.body(), stream.close, headers)


def with_text(body: JSON, text: Callable[[int], str]) -> JSON:
    """The reconstructed stream with the text each choice's client actually received (guarded)."""
    choices = [
        {**choice, "message": {**choice["message"], "content": text(choice["index"])}}
        for choice in body["choices"]
    ]
    return {**body, "choices": choices}


async def embeddings(rt: Runtime, ctx: RequestContext, request: Request) -> Response:
    body, _route = await _prepare(rt, ctx, request, validate.embeddings_request)
    body = await rt.guards.check_embeddings_input(ctx, body)
    result = await pipeline.embeddings(rt, ctx, body)
    return json_response(result, pipeline.model_headers(ctx))


async def list_models(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    request_id = pipeline.new_request_id()
    try:
        key = await admission.authenticate(rt, request)
    except Exception as exc:
        return error_response(exc, request_id)
    data = [
        {"id": alias, "object": "model", "created": 0, "owned_by": "pilothouse"}
        for alias in sorted(rt.router.routes)
        if key.allows(alias)
    ]
    return json_response({"object": "list", "data": data}, {"x-request-id": request_id})


def routes() -> list[Route]:
    return [
        Route("/v1/chat/completions", model_endpoint("chat", chat), methods=["POST"]),
        Route("/chat/completions", model_endpoint("chat", chat), methods=["POST"]),
        Route("/v1/embeddings", model_endpoint("embeddings", embeddings), methods=["POST"]),
        Route("/embeddings", model_endpoint("embeddings", embeddings), methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/models", list_models, methods=["GET"]),
    ]
