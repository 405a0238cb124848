"""Before the call: auth, model access, RPM/TPM and budget reservations.

After the call: reconcile what was reserved with what was really used. Both
halves read and write only the :class:`RequestContext`, so a request that
fails anywhere still settles exactly what it reserved.
"""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime
from typing import Any

from pilothouse.errors import (
    AuthenticationError,
    PermissionDeniedError,
    RateLimitError,
)
from pilothouse.gateway import scope_admission as scoped
from pilothouse.gateway.context import RequestContext
from pilothouse.gateway.runtime import Runtime
from pilothouse.limits.budget import period_key
from pilothouse.limits.keys import KeyRecord
from pilothouse.limits.money import pico_to_str, pico_to_usd
from pilothouse.limits.ratelimit import Take
from pilothouse.providers.fanout import choice_count, fans_out
from pilothouse.routing.router import Route
from pilothouse.tokens import bounds_for, estimate_input, input_upper_bound

log = logging.getLogger("pilothouse.budget")


def bearer(headers: Any) -> str | None:
    value = headers.get("authorization")
    if value and value[:7].lower() == "bearer ":
        return str(value[7:].strip()) or None
    api_key = headers.get("api-key") or headers.get("x-api-key")
    return str(api_key) if api_key else None


def source_of(request: Any) -> str:
    """The client address failed attempts are counted against (the socket peer)."""
    client = getattr(request, "client", None)
    return str(client.host) if client is not None and client.host else "unknown"


async def check_secret(
    rt: Runtime, secret: str, source: str, *, message: str, bootstrap: bool = False
) -> KeyRecord | None:
    """The one credential check for every route that takes a key.

    Returns the key, or ``None`` for the configured admin key (when
    ``bootstrap`` allows it). A valid key always passes, however throttled its
    source is; a wrong one counts against its source and the principal tried
    and is a 401, or a 429 with ``Retry-After`` once either is throttled.
    """
    admin_key = rt.settings.server.admin_key if bootstrap else None
    if admin_key is not None and hmac.compare_digest(secret.encode(), admin_key.get().encode()):
        return None
    record = await rt.key_cache.lookup(secret)
    if record is not None:
        return record
    wait = await rt.auth_throttle.failure(source, secret)
    rt.telemetry.metrics.auth_failed("throttled" if wait > 0 else "unauthorized")
    if wait > 0:
        raise RateLimitError(
            f"too many failed authentication attempts; retry in {int(wait) + 1}s "
            "(a valid key is always accepted)",
            retry_after=wait,
            code="auth_throttled",
        )
    raise AuthenticationError(message)


async def authenticate(rt: Runtime, request: Any) -> KeyRecord:
    """The inference key of a ``/v1`` request (401/403/429 otherwise)."""
    secret = bearer(request.headers)
    if secret is None:
        raise AuthenticationError(
            "missing API key: send `Authorization: Bearer <key>`", code="missing_api_key"
        )
    record = await check_secret(
        rt, secret, source_of(request), message="invalid or revoked API key"
    )
    assert record is not None  # bootstrap is not accepted here
    if "inference" not in record.scopes:
        raise PermissionDeniedError(
            "this key has no inference scope (it is for " + ", ".join(sorted(record.scopes)) + ")",
            code="not_inference",
        )
    return record


def authorize(key: KeyRecord, alias: str) -> None:
    if not key.allows(alias):
        raise PermissionDeniedError(
            f"this key may not use model `{alias}`", param="model", code="model_not_allowed"
        )


def _output_budget(request: dict[str, Any], route: Route) -> int:
    limit = request.get("max_completion_tokens") or request.get("max_tokens")
    ceiling = max(t.config.max_output_tokens for t in route.targets)
    return min(limit, ceiling) if isinstance(limit, int) else ceiling


def _rate_takes(key: KeyRecord, alias: str, tokens: int) -> list[Take]:
    takes = []
    if key.rpm:
        takes.append(Take(f"{key.id}:rpm", key.rpm, 1))
    if key.tpm:
        takes.append(Take(f"{key.id}:tpm", key.tpm, tokens))
    alias_limits = key.model_limits.get(alias)
    if alias_limits is not None:
        if alias_limits.rpm:
            takes.append(Take(f"{key.id}:{alias}:rpm", alias_limits.rpm, 1))
        if alias_limits.tpm:
            takes.append(Take(f"{key.id}:{alias}:tpm", alias_limits.tpm, tokens))
    return takes


async def admit(rt: Runtime, ctx: RequestContext, request: dict[str, Any], route: Route) -> None:
    """Reserve rate-limit tokens and worst-case budget in the key, its user and its team.

    Raises 403 for a model the user or team may not use, 429 when any limit is short.
    """
    key = ctx.key
    if key is None:
        return
    alias = route.alias
    await scoped.resolve(rt, ctx, key)
    scoped.authorize(ctx, alias)
    has_tpm = key.tpm or (key.model_limits.get(alias) and key.model_limits[alias].tpm)
    if key.rpm or has_tpm or key.model_limits or scoped.has_rate_limits(ctx):
        out_est = request.get("max_completion_tokens") or request.get("max_tokens")
        if not isinstance(out_est, int):
            out_est = rt.settings.limits.default_output_estimate
        choices = choice_count(request)  # a fan-out pays the prompt once per choice
        out_tokens = out_est * choices if ctx.generates else 0
        tokens = estimate_input(request) * choices + out_tokens
        owned = [(t, scoped.Owner("key", key.name)) for t in _rate_takes(key, alias, tokens)]
        owned += scoped.rate_takes(ctx, tokens)
        takes = [take for take, _ in owned]
        for take, owner in owned:
            if take.amount > take.limit:
                raise RateLimitError(
                    f"this request needs about {take.amount} tokens, more than the "
                    f"{owner.kind}'s per-minute limit of {take.limit}",
                    retry_after=60,
                    code="tokens_exceed_limit",
                )
        wait, which = await rt.limiter.acquire_which(takes)
        if wait > 0:
            raise scoped.rate_refusal(owned[which][1], wait)
        ctx.reserved_tokens = tokens
    charged = scoped.budget_slots(key, ctx)
    if charged:
        # A cascade may pay every step (and its judge): reserve for all of them.
        worst = sum(_worst_case(rt, ctx, request, r) for r in _paying_routes(rt, ctx, route))
        slots = [slot for slot, _, _ in charged]
        refusal = await rt.budgets.reserve_all(slots, worst, ctx.request_id)
        if refusal is not None:
            await _release_rate(rt, ctx, route)
            raise scoped.budget_refusal(refusal, charged, worst)
        ctx.reserved_pico = worst
        ctx.budget_slots = tuple(slots)


def _worst_case(rt: Runtime, ctx: RequestContext, request: dict[str, Any], route: Route) -> int:
    worst = 0
    out = _output_budget(request, route) if ctx.generates else 0
    out *= choice_count(request)
    overrides = rt.settings.limits.content_bounds
    for target in route.targets:
        price = rt.prices.get(target.config.model)
        if price is not None:
            kind = str(getattr(getattr(target.provider, "config", None), "type", "default"))
            upper_in = input_upper_bound(request, bounds_for(kind, overrides))
            if fans_out(target.provider, request):
                upper_in *= choice_count(request)
            worst = max(worst, price.worst_case_pico(upper_in, out))
    return worst


def _paying_routes(rt: Runtime, ctx: RequestContext, route: Route) -> list[Route]:
    """The routes a request may pay for: one, or every step of a (non-streamed) cascade."""
    decision = ctx.route
    if decision is None or decision.policy != "cascade" or request_streams(ctx):
        return [route]
    policy = rt.router.route(decision.requested).config.routing
    cfg = policy.cascade if policy is not None else None
    if cfg is None:
        return [route]
    names = [*cfg.steps, *([cfg.judge.alias] if cfg.judge is not None else [])]
    return [rt.router.route(name) for name in names]


def request_streams(ctx: RequestContext) -> bool:
    return bool(ctx.request_body and ctx.request_body.get("stream") is True)


async def _release_rate(rt: Runtime, ctx: RequestContext, route: Route) -> None:
    if ctx.key is None or not ctx.reserved_tokens:
        return
    await _reconcile_tokens(rt, ctx, route.alias, -ctx.reserved_tokens)
    ctx.reserved_tokens = 0


async def _reconcile_tokens(rt: Runtime, ctx: RequestContext, alias: str, delta: int) -> None:
    key = ctx.key
    assert key is not None
    if key.tpm:
        await rt.limiter.adjust(f"{key.id}:tpm", key.tpm, delta)
    alias_limits = key.model_limits.get(alias)
    if alias_limits is not None and alias_limits.tpm:
        await rt.limiter.adjust(f"{key.id}:{alias}:tpm", alias_limits.tpm, delta)
    await scoped.reconcile_tokens(rt, ctx, delta)


def over_reservation(ctx: RequestContext) -> bool:
    """A budgeted request whose real cost is above what it reserved (a lying upstream)."""
    return bool(ctx.budget_slots and ctx.cost_pico > ctx.reserved_pico)


def budgeted(ctx: RequestContext) -> bool:
    """The request was charged to a budget (its key's, team's or user's)."""
    return bool(ctx.budget_slots or (ctx.key is not None and ctx.key.budget_pico is not None))


def needs_settlement(ctx: RequestContext) -> bool:
    return bool(ctx.key is not None and (ctx.reserved_tokens or ctx.budget_slots))


async def settle(rt: Runtime, ctx: RequestContext) -> None:
    """Replace reservations with real usage (tokens for TPM, pico-USD for budgets)."""
    key = ctx.key
    if key is None:
        return
    if ctx.reserved_tokens:
        used = ctx.usage.input_tokens + ctx.usage.output_tokens
        await _reconcile_tokens(rt, ctx, ctx.alias or "", used - ctx.reserved_tokens)
    if ctx.budget_slots:
        # Honest usage is charged, and a cost above the reservation freezes the budgets.
        freeze = over_reservation(ctx)
        await rt.budgets.settle_all(ctx.budget_slots, ctx.request_id, ctx.cost_pico, freeze=freeze)
        if freeze:
            log.warning(
                "request %s cost %s USD, above its %s USD reservation: budgets of %s frozen",
                ctx.request_id, pico_to_str(ctx.cost_pico), pico_to_str(ctx.reserved_pico),
                ", ".join(s.scope for s in ctx.budget_slots),
            )  # fmt: skip
        if key.budget_pico is not None and rt.settings.costs.budget_alert_thresholds:
            spent = await rt.budgets.spent(key.id, period_key(key.budget_period))
            rt.budget_alerts.observe(key, spent, datetime.now(UTC))
            rt.telemetry.metrics.set_budget_remaining(
                key.id, pico_to_usd(max(key.budget_pico - spent, 0))
            )
