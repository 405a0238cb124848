"""The semantic cache stage of the chat pipeline (streamed or not).

Runs after the input guards and before the router: ``lookup`` answers from the
cache or returns a pending :class:`Pending` that ``store`` fills once the
upstream answered. Embedding the query goes through the embedder alias's
router (the local embedder runs in its own worker thread, so the event loop
never blocks) under a child context, so its attempts never count as the
chat's.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pilothouse.cache import gate
from pilothouse.cache.semantic import (
    Lookup,
    SemanticCache,
    partition_id,
    refusal,
    split_request,
    unit,
)
from pilothouse.cache.vector_index import Entry, MemoryVectorIndex, RedisVectorIndex, VectorIndex
from pilothouse.config.schema import SemanticCacheConfig
from pilothouse.gateway.context import RequestContext
from pilothouse.gateway.runtime import Runtime
from pilothouse.ids import ulid
from pilothouse.providers.base import JSON, Usage
from pilothouse.routing.router import Route


@dataclass(slots=True)
class Pending:
    cache: SemanticCache
    config: SemanticCacheConfig
    lookup: Lookup
    query: str
    ttl_s: float


def build_index(rt: Runtime) -> VectorIndex:
    settings = rt.settings
    biggest = max(
        (
            m.cache.semantic.max_entries
            for m in settings.models.values()
            if m.cache is not None and m.cache.semantic is not None
        ),
        default=10_000,
    )
    if settings.cache.backend == "redis" and rt.redis is not None:
        return RedisVectorIndex(rt.redis, settings.redis.prefix, biggest)
    return MemoryVectorIndex(biggest)


async def prepare(rt: Runtime) -> None:
    """Build the cache when an alias opts in; the entity finder (spaCy) loads off the loop."""
    if not any(
        m.cache is not None and m.cache.semantic is not None for m in rt.settings.models.values()
    ):
        return

    async def embed(alias: str, text: str) -> np.ndarray:
        child = RequestContext(request_id="req_" + ulid(), endpoint="embeddings")
        child.alias = alias
        child.deadline = rt.router.deadline_for(rt.router.route(alias))
        result = await rt.router.embed(child, {"model": alias, "input": [text]})
        return unit(np.asarray(result.body["data"][0]["embedding"], dtype=np.float32))

    entities = await asyncio.to_thread(gate.entity_finder)
    rt.semantic_cache = SemanticCache(build_index(rt), embed, entities=entities)


def scope_of(ctx: RequestContext, scope: str) -> str:
    """Key by default; team or global only when configured; never across tenants."""
    key = ctx.key
    meta = key.metadata if key is not None else {}
    tenant = f"tenant:{meta.get('tenant', '')}|"
    if scope == "global":
        return tenant + "global"
    if scope == "team" and meta.get("team"):
        return tenant + f"team:{meta['team']}"
    return tenant + f"key:{key.id if key else ''}"


def refuses(route: Route, request: JSON) -> bool:
    """On a semantic alias the never-cached rules hold for the exact tier too."""
    cfg = route.config.cache.semantic if route.config.cache is not None else None
    if cfg is None:
        return False
    return refusal(request, allow_nonzero_temperature=cfg.allow_nonzero_temperature) is not None


def _verifier(config: SemanticCacheConfig) -> gate.Verifier | None:
    return gate.verifier(config.verifier) if config.verifier else None


async def lookup(
    rt: Runtime, ctx: RequestContext, request: JSON, route: Route, ttl_s: float
) -> tuple[JSON | None, Pending | None]:
    """(cached body, None) on a hit, (None, pending) on a cacheable miss, (None, None) otherwise."""
    cfg = route.config.cache.semantic if route.config.cache is not None else None
    if cfg is None or rt.semantic_cache is None:
        return None, None
    if refusal(request, allow_nonzero_temperature=cfg.allow_nonzero_temperature) is not None:
        return None, None
    if ctx.completion or ctx.responses:
        # endpoint-only fields (reasoning, suffix, ...) change the answer in ways a
        # similarity match cannot check: these requests use the exact tier only
        return None, None
    parts = split_request(request)
    if parts is None:
        return None, None
    query, rest = parts
    from pilothouse.gateway.citation_stage import bundle_cites

    retrieved = bundle_cites(ctx)
    if retrieved:  # the documents a bundle's retrieval injected decide the answer too
        rest["retrieved"] = retrieved
    prompt = ctx.prompt or {}
    version = {
        "prompt": [prompt.get("name"), prompt.get("version")],
        "route": rt.route_version,
    }
    partition = partition_id(route.alias, scope_of(ctx, cfg.scope), version, rest)
    cache: SemanticCache = rt.semantic_cache
    found = await cache.lookup(
        partition, query, embedder=cfg.embedder, threshold=cfg.threshold, verifier=_verifier(cfg)
    )
    if found.hit is None:
        ctx.cache_info = {"kind": "miss", "rejected": found.rejected}
        return None, Pending(cache, cfg, found, query, ttl_s)
    entry = found.hit.entry
    ctx.cache_hit = True
    ctx.cache_info = {
        "kind": found.hit.kind,
        "similarity": round(found.hit.similarity, 6),
        "entry_id": entry.id,
        "tokens_saved": entry.tokens,
    }
    ctx.provider, ctx.upstream_model = "cache", str(entry.response.get("model") or ctx.alias)
    ctx.usage = Usage()
    ctx.cost_pico = 0
    ctx.cache_saved = Usage.from_openai(entry.response.get("usage"))
    return entry.response, None


def cacheable_answer(body: JSON) -> bool:
    """Tool calls and truncated or filtered answers are never stored."""
    choices = body.get("choices") or []
    if len(choices) != 1:
        return False
    choice = choices[0]
    message = choice.get("message") or {}
    return choice.get("finish_reason") == "stop" and not message.get("tool_calls")


async def store(pending: Pending, body: JSON, usage: Usage) -> tuple[str, str] | None:
    """Store the answer; returns (partition, entry id), or None when it is not cacheable."""
    if not cacheable_answer(body):
        return None
    entry = Entry(
        id="sem_" + ulid(),
        text=pending.lookup.text,
        query=pending.query,
        response=body,
        expires=time.time() + pending.ttl_s,
        tokens=usage.input_tokens + usage.output_tokens,
    )
    await pending.cache.store(pending.lookup, pending.config.embedder, pending.query, entry)
    return pending.lookup.partition, entry.id


def usage_fields(ctx: RequestContext) -> dict[str, Any]:
    info = ctx.cache_info or {}
    kind = info.get("kind")
    return {
        "cache_kind": kind if kind in {"hit", "semantic"} else ("hit" if ctx.cache_hit else None),
        "cache_tokens_saved": info.get("tokens_saved") if ctx.cache_hit else None,
    }
