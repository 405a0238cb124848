"""Routing policies on the request path: rules pick the alias, rollouts split it, degrade.

Called by ``routes_openai._prepare`` and batch lines after the key may use
the requested alias. The order is fixed and documented (docs/routing.md):

1. the requested alias's policy (``rules``) picks the alias that serves;
2. a rollout running on *that* alias splits it (canary/A-B/shadow);
3. if every target of the serving alias has an open breaker, or an operator
   forced degraded mode, the alias's ``degrade.when_all_open`` serves instead,
   with tools stripped and the stricter timeout.

The decision is kept on ``ctx.route`` for headers, spans, metrics and the
usage record. Nothing here touches the store: the budget share comes from the
budget state admission reads anyway (memory or Redis).
"""

from __future__ import annotations

import time

from pilothouse.errors import InvalidRequestError
from pilothouse.gateway import rollout_routing
from pilothouse.gateway.context import RequestContext
from pilothouse.gateway.runtime import Runtime
from pilothouse.limits.budget import period_key
from pilothouse.providers.base import JSON
from pilothouse.routing.features import Features
from pilothouse.routing.policy import RouteDecision
from pilothouse.routing.router import Route

TOOL_FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "functions", "function_call")


async def select(rt: Runtime, ctx: RequestContext, body: JSON, *, chat: bool) -> Route:
    """Decide the serving alias for ``ctx`` (mutating ``ctx.alias``); return its route."""
    requested = ctx.alias or ""
    policy = rt.router.policies.get(requested)
    if policy is not None:
        if not chat:
            raise InvalidRequestError(
                f"model `{requested}` routes chat requests by {policy.strategy}; "
                "it cannot serve this endpoint",
                param="model",
            )
        if policy.strategy == "cascade":
            steps = policy.cascade
            if body.get("stream") is True:  # validators need the whole answer: strongest step
                index, why = len(steps) - 1, "streamed: not cascaded, last step"
            else:
                index, why = 0, "first step"
            ctx.route = RouteDecision("cascade", requested, steps[index], f"cascade[{index}]", why)
        else:
            features = Features(body, ctx.metadata, ctx.key)
            ctx.route = await policy.decide(features, lambda: budget_share(rt, ctx))
        ctx.alias = ctx.route.alias
    if chat:
        rollout_routing.alias_request(rt, ctx, body)  # a rollout splits the chosen alias
    route = rt.router.route(ctx.alias or "")
    ctx.deadline = rt.router.deadline_for(route)
    return _maybe_degrade(rt, ctx, body, route, requested)


async def budget_share(rt: Runtime, ctx: RequestContext) -> float | None:
    """The share of the key's budget spent this period (None: no key or no budget)."""
    key = ctx.key
    if key is None or not key.budget_pico:
        return None
    spent = await rt.budgets.spent(key.id, period_key(key.budget_period))
    return spent / key.budget_pico


def _maybe_degrade(
    rt: Runtime, ctx: RequestContext, body: JSON, route: Route, requested: str
) -> Route:
    served = route.alias
    degrade, owner = route.config.degrade, served
    if degrade is None and requested != served:
        degrade, owner = rt.router.route(requested).config.degrade, requested
    if degrade is None:
        return route
    forced = rt.degrade.is_forced(owner) or rt.degrade.is_forced(requested)
    if not forced and not rt.router.all_open(route):
        return route
    reason = "forced" if forced else "all_open"
    decision = ctx.route
    if decision is None:
        decision = ctx.route = RouteDecision("ordered", requested, served, None, "")
    stripped = []
    if degrade.strip_tools_when_degraded:
        stripped = [name for name in TOOL_FIELDS if body.pop(name, None) is not None]
    why = "forced by an operator" if forced else f"every target of `{served}` is open"
    decision.alias, decision.degraded, decision.degrade_reason = (
        degrade.when_all_open,
        True,
        reason,
    )
    decision.reason = "; ".join(
        p for p in (decision.reason, f"degraded: {why}", "tools stripped" if stripped else "") if p
    )
    ctx.alias = degrade.when_all_open
    target = rt.router.route(ctx.alias)
    ctx.deadline = rt.router.deadline_for(target)
    if degrade.timeout_s_when_degraded is not None:
        ctx.deadline = min(ctx.deadline, time.monotonic() + degrade.timeout_s_when_degraded)
    return target


def headers(ctx: RequestContext) -> dict[str, str]:
    d: RouteDecision | None = ctx.route
    if d is None:
        return {}
    out = {"x-pilothouse-route": d.header()}
    if d.degraded:
        out["x-pilothouse-degraded"] = "true"
    return out


def usage_fields(ctx: RequestContext) -> dict[str, object]:
    """The decision's columns on the usage record (migration 0013)."""
    d: RouteDecision | None = ctx.route
    if d is None:
        arm = ctx.rollout
        asked = getattr(arm, "baseline_alias", None) or ctx.alias  # before a rollout's split
        return {
            "route_requested": asked,
            "route_policy": None,
            "route_rule": None,
            "route_reason": None,
            "route_degraded": False,
            "route_steps": None,
        }
    return {
        "route_requested": d.requested,
        "route_policy": d.policy,
        "route_rule": d.rule,
        "route_reason": d.reason[:500],
        "route_degraded": d.degraded,
        "route_steps": d.steps or None,
    }
