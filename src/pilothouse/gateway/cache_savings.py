"""What a cache hit saved: the tokens and dollars its answer cost when it was made upstream.

A hit is billed 0/0 tokens (nothing went upstream); without these two columns the
cache's value would be invisible in the usage ledger and the console dashboards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pilothouse.providers.base import Usage

if TYPE_CHECKING:
    from pilothouse.gateway.context import RequestContext
    from pilothouse.gateway.runtime import Runtime


def saved_usage(body: dict[str, Any]) -> Usage | None:
    """The cached answer's own ``usage`` (what the upstream charged for it), if it has one."""
    return Usage.from_openai(body.get("usage"))


def usage_fields(rt: Runtime, ctx: RequestContext) -> dict[str, Any]:
    """``cache_tokens_saved`` and ``cache_saved_pico`` for the usage row (no saving on a miss)."""
    saved = ctx.cache_saved
    if not ctx.cache_hit or saved is None:
        return {"cache_saved_pico": None}
    return {
        "cache_tokens_saved": saved.input_tokens + saved.output_tokens,
        "cache_saved_pico": rt.prices.cost_pico(ctx.upstream_model, saved),
    }
