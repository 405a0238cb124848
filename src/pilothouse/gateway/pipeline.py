"""One request pipeline for chat and embeddings, streamed or not.

auth → validate → route → admit (limits, budget) → cache → router → cost →
finish (settle reservations, one ledger row). ``finish`` runs exactly once
per request whatever happens, including client disconnects mid-stream.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from pilothouse.cache.response_cache import cache_key
from pilothouse.errors import PilothouseError, UpstreamError
from pilothouse.gateway import (
    admission,
    cache_savings,
    cascade,
    citation_stage,
    rollout_routing,
    route_policy,
    semantic_stage,
)
from pilothouse.gateway.context import RequestContext
from pilothouse.gateway.runtime import Runtime
from pilothouse.ids import ulid
from pilothouse.limits.money import pico_to_str
from pilothouse.providers.base import JSON, Usage
from pilothouse.routing.router import Route
from pilothouse.tokens import estimate_input, estimate_text


def new_request_id() -> str:
    return "req_" + ulid()


def fail(ctx: RequestContext, exc: BaseException) -> None:
    if isinstance(exc, PilothouseError):
        ctx.status, ctx.error_type = exc.status, exc.code or exc.type
    else:
        ctx.status, ctx.error_type = 500, "internal_error"


def scrub_failure(rt: Runtime, ctx: RequestContext, exc: BaseException) -> None:
    """Second line behind the router: no secret in an error that involved an upstream."""
    if ctx.attempts and isinstance(exc, PilothouseError):
        exc.message = rt.scrubber.text(exc.message)


def finish(rt: Runtime, ctx: RequestContext, *, ledger: bool = True) -> None:
    """Settle reservations and queue the usage row. Synchronous: safe in any cancel scope.

    ``ledger=False`` is for callers that commit :func:`usage_row` themselves in
    their own transaction (batch lines: one result and one usage row, atomically).
    """
    rt.metadata_privacy.protect(ctx)  # before the usage row and the trace read it
    for attempt in ctx.attempts:  # what spans store; the router already scrubbed it once
        if attempt.error:
            attempt.error = rt.scrubber.text(attempt.error)
    if admission.needs_settlement(ctx):
        rt.spawn(admission.settle(rt, ctx))
    if ledger:
        rt.ledger.record(usage_row(rt, ctx))
    rollout_routing.after_response(rt, ctx)
    rt.telemetry.finish(ctx)
    online = rt.online
    if online is not None and ctx.status == 200 and ctx.generates and ctx.response_body:
        online.maybe_sample(ctx.request_id, ctx.alias, ctx.request_body or {}, ctx.response_body)


def usage_row(rt: Runtime, ctx: RequestContext) -> dict[str, Any]:
    """The one usage record of a finished request, as the ledger stores it."""
    key = ctx.key
    prompt = ctx.prompt or {}
    rt.metadata_privacy.protect(ctx)
    metadata = ctx.metadata
    if prompt.get("overrides"):
        metadata = {**(metadata or {}), "prompt_overrides": prompt["overrides"]}
    return {
        "id": ctx.request_id.removeprefix("req_"),  # one ULID per request
        "request_id": ctx.request_id,
        "created_at": datetime.now(UTC),
        "key_id": key.id if key else None,
        "endpoint": ctx.endpoint,
        "alias": ctx.alias,
        "provider": ctx.provider,
        "upstream_model": ctx.upstream_model,
        "stream": ctx.stream,
        "attempts": ctx.attempt_count,
        "status": ctx.status,
        "error_type": ctx.error_type,
        "input_tokens": ctx.usage.input_tokens,
        "output_tokens": ctx.usage.output_tokens,
        "cached_input_tokens": ctx.usage.cached_input_tokens,
        "estimated": ctx.usage.estimated,
        "cost_pico": ctx.cost_pico,
        "reserved_pico": ctx.reserved_pico if admission.budgeted(ctx) else None,
        "reservation_exceeded": admission.over_reservation(ctx),
        "latency_ms": round(ctx.elapsed() * 1000, 3),
        "ttft_ms": round(ctx.ttft_s * 1000, 3) if ctx.ttft_s is not None else None,
        "cache_hit": ctx.cache_hit,
        "metadata": metadata,
        "prompt_name": prompt.get("name"),
        "prompt_version": prompt.get("version"),
        "prompt_label": prompt.get("label"),
        "prompt_hash": prompt.get("hash"),
        "route_version": rt.route_version,
        "team_id": ctx.team.id if ctx.team else (key.team_id if key else None),
        "user_id": ctx.user.id if ctx.user else (key.user_id if key else None),
        **dict(zip(("rollout_id", "rollout_arm"), rollout_routing.usage_fields(ctx), strict=True)),
        **route_policy.usage_fields(ctx),
        **semantic_stage.usage_fields(ctx),
        **cache_savings.usage_fields(rt, ctx),
    }


def model_headers(ctx: RequestContext) -> dict[str, str]:
    headers = {"x-request-id": ctx.request_id, "x-pilothouse-trace-id": ctx.trace_id}
    if ctx.cache_hit:
        headers["x-pilothouse-cache"] = (ctx.cache_info or {}).get("kind") or "hit"
    if ctx.provider:
        headers["x-pilothouse-target"] = f"{ctx.provider}/{ctx.upstream_model}"
    headers["x-pilothouse-attempts"] = str(ctx.attempt_count)
    if ctx.prompt is not None:
        headers["x-pilothouse-prompt"] = f"{ctx.prompt['name']}@{ctx.prompt['version']}"
    if ctx.guards is not None:
        headers["x-pilothouse-guards"] = ctx.guards.summary()
    bundle_retrievals = [r for r in ctx.retrievals if r["source"] == "bundle"]
    if bundle_retrievals:  # the documents a prompt bundle's retrieval put in the prompt
        headers["x-pilothouse-retrieval"] = ",".join(
            quote(h["id"], safe="/:._-~#@") for r in bundle_retrievals for h in r["hits"]
        )
    if ctx.rollout is not None:
        headers.update(rollout_routing.arm_headers(ctx))
    if ctx.route is not None:
        headers.update(route_policy.headers(ctx))
    if not ctx.stream and ctx.status == 200:
        headers["x-pilothouse-cost-usd"] = pico_to_str(ctx.cost_pico)
    return headers


def price_usage(rt: Runtime, ctx: RequestContext, usage: Usage) -> None:
    ctx.usage = usage
    ctx.cost_pico = rt.prices.cost_pico(ctx.upstream_model, usage)


def estimated_usage(request: JSON, output_text: str) -> Usage:
    return Usage(estimate_input(request), estimate_text(output_text), 0, estimated=True)


def completion_text(body: JSON) -> str:
    try:
        content = body["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""
    return content if isinstance(content, str) else ""


def cache_ttl(route: Route, headers: Any) -> float | None:
    """Cache TTL for this request, or ``None`` when caching is off or refused by the client."""
    if route.config.cache is None:
        return None
    control = (headers.get("cache-control") or "").lower()
    if "no-store" in control or "no-cache" in control:
        return None
    return route.config.cache.ttl_s


def exact_key(rt: Runtime, ctx: RequestContext, route: Route, request: JSON) -> str:
    """The exact-cache key: the request, the route and prompt versions, the endpoint-only
    fields and, on a semantic alias, its scope (so the exact tier shares no more widely
    than the semantic one)."""
    cache = route.config.cache
    semantic = cache.semantic if cache is not None else None
    scope = semantic_stage.scope_of(ctx, semantic.scope) if semantic is not None else None
    return cache_key(
        route.alias,
        request,
        route_version=rt.route_version,
        prompt=ctx.prompt,
        scope=scope,
        native=native_fields(ctx),
    )


def native_fields(ctx: RequestContext) -> JSON:
    """The endpoint-only fields of /v1/completions and /v1/responses (empty for chat)."""
    return {k: v for k, v in (("completion", ctx.completion), ("responses", ctx.responses)) if v}


async def cached_completion(rt: Runtime, ctx: RequestContext, key: str) -> JSON | None:
    hit = await rt.cache.get(key)
    if hit is None:
        return None
    ctx.cache_hit = True
    ctx.provider, ctx.upstream_model = "cache", str(hit.get("model") or ctx.alias)
    ctx.usage = Usage()
    ctx.cache_saved = cache_savings.saved_usage(hit)
    return hit


async def chat_completion(
    rt: Runtime, ctx: RequestContext, request: JSON, route: Route, headers: Any
) -> JSON:
    """Non-streamed chat: returns the OpenAI body (from cache or upstream), output-guarded.

    Every chat ingress (/v1/chat/completions, /v1/messages, /v1/responses) comes
    through here or the stream path, so no endpoint can skip the guards.
    """
    request = await rt.guards.check_chat_input(ctx, request)  # before the cache and the router
    refused = guard_refuses_cache(ctx) or semantic_stage.refuses(route, request)
    ttl = None if refused else cache_ttl(route, headers)
    key = exact_key(rt, ctx, route, request) if ttl is not None else None
    if key is not None:
        hit = await cached_completion(rt, ctx, key)
        ctx.cache_checked_at = time.perf_counter()
        if hit is not None:
            ctx.response_body = hit
            return await rt.guards.check_chat_output(ctx, hit)  # cached answers are guarded too
    pending = None
    if ttl is not None:  # exact miss: the semantic tier, when the alias opts in
        hit, pending = await semantic_stage.lookup(rt, ctx, request, route, ttl)
        ctx.cache_checked_at = time.perf_counter()
        if hit is not None:
            ctx.response_body = hit
            return await rt.guards.check_chat_output(ctx, hit)
    steps = cascade.config_of(rt, ctx)
    if steps is not None:  # cheap alias first, escalated when a validator rejects its answer
        _result, body = await cascade.chat(rt, ctx, request, steps)
        ctx.response_body, ctx.ttft_s = body, ctx.elapsed()
        if ttl is not None:
            await store_answer(rt, ctx, request, key, ttl, pending, body, ctx.usage)
        return body
    try:
        result = await rt.router.chat(ctx, request)
    except UpstreamError as exc:
        retry = await rollout_routing.fallback_body(rt, ctx, exc, request)
        if retry is None:
            raise
        request = retry
        result = await rt.router.chat(ctx, request)
    ctx.response_body = result.body
    usage = result.usage
    if usage.estimated and not (usage.input_tokens or usage.output_tokens):
        usage = estimated_usage(request, completion_text(result.body))
    price_usage(rt, ctx, usage)
    ctx.ttft_s = ctx.elapsed()
    body = await rt.guards.check_chat_output(ctx, result.body)
    if ttl is not None:
        await store_answer(rt, ctx, request, key, ttl, pending, body, usage)
    return body


async def store_answer(
    rt: Runtime,
    ctx: RequestContext,
    request: JSON,
    key: str | None,
    ttl: float,
    pending: semantic_stage.Pending | None,
    body: JSON,
    usage: Usage,
) -> None:
    """Into the exact cache (``key``) and the semantic tier (``pending``), citations noted."""
    if key is not None:
        await rt.cache.set(key, body, ttl)
    semantic = await semantic_stage.store(pending, body, usage) if pending is not None else None
    await citation_stage.remember(rt, ctx, request, key, semantic, ttl)


def guard_refuses_cache(ctx: RequestContext) -> bool:
    """A request a PII or injection guard found something in is never cached."""
    return ctx.guards is not None and bool(ctx.guards.nocache)


async def embeddings(rt: Runtime, ctx: RequestContext, request: JSON) -> JSON:
    result = await rt.router.embed(ctx, request)
    ctx.response_body = {"model": result.body.get("model"), "usage": result.body.get("usage")}
    usage = result.usage
    if usage.estimated and not usage.input_tokens:
        usage = Usage(estimate_input(request), 0, 0, estimated=True)
    price_usage(rt, ctx, usage)
    return result.body


async def open_stream(rt: Runtime, ctx: RequestContext, request: JSON) -> Any:
    """Open the upstream stream; a failed rollout candidate falls back to the baseline."""
    try:
        return await rt.router.open_stream(ctx, request)
    except UpstreamError as exc:
        retry = await rollout_routing.fallback_body(rt, ctx, exc, request)
        if retry is None:
            raise
        return await rt.router.open_stream(ctx, retry)
