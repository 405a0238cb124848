"""The team and user a request is charged to, and what their limits take or refuse.

A key's team is its own ``team_id`` (or its user's team); the team and user
records come from the runtime's :class:`~pilothouse.limits.scopes.ScopeCache`.
Refusals name the scope: ``team_budget_exceeded``, ``user_rate_limit_exceeded``,
``team_model_not_allowed`` …; a key's own refusals keep their codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pilothouse.errors import PermissionDeniedError, QuotaExceededError, RateLimitError
from pilothouse.gateway.context import RequestContext
from pilothouse.gateway.runtime import Runtime
from pilothouse.limits.budget import Refusal, Slot, period_key
from pilothouse.limits.keys import KeyRecord
from pilothouse.limits.money import pico_to_str
from pilothouse.limits.ratelimit import Take
from pilothouse.limits.scopes import ScopeRecord


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose limit a rate-limit take or a budget slot is: ``key``, ``team`` or ``user``."""

    kind: str
    name: str
    limit_name: str = ""


async def resolve(rt: Runtime, ctx: RequestContext, key: KeyRecord) -> None:
    """Fill ``ctx.team``/``ctx.user`` from the key; 403 when one was deleted under it."""
    user = await _load(rt, "user", key.user_id) if key.user_id else None
    team_id = key.team_id or (user.team_id if user is not None else None)
    team = await _load(rt, "team", team_id) if team_id else None
    ctx.team, ctx.user = team, user


async def _load(rt: Runtime, kind: str, scope_id: str) -> ScopeRecord:
    record = await rt.scope_cache.get(scope_id)
    if record is None:
        raise PermissionDeniedError(
            f"this key's {kind} {scope_id!r} no longer exists", code=f"{kind}_not_found"
        )
    return record


def scopes(ctx: RequestContext) -> list[ScopeRecord]:
    """User first, then team: the order refusals are reported in after the key's own."""
    return [s for s in (ctx.user, ctx.team) if s is not None]


def authorize(ctx: RequestContext, alias: str) -> None:
    for scope in scopes(ctx):
        if not scope.allows(alias):
            raise PermissionDeniedError(
                f"{scope.kind} `{scope.name}` may not use model `{alias}`",
                param="model",
                code=f"{scope.kind}_model_not_allowed",
            )


def has_rate_limits(ctx: RequestContext) -> bool:
    return any(s.rpm or s.tpm for s in scopes(ctx))


def rate_takes(ctx: RequestContext, tokens: int) -> list[tuple[Take, Owner]]:
    takes = []
    for s in scopes(ctx):
        if s.rpm:
            takes.append((Take(f"{s.id}:rpm", s.rpm, 1), Owner(s.kind, s.name, "rpm")))
        if s.tpm:
            takes.append((Take(f"{s.id}:tpm", s.tpm, tokens), Owner(s.kind, s.name, "tpm")))
    return takes


def rate_refusal(owner: Owner, wait: float) -> RateLimitError:
    if owner.kind == "key":
        return RateLimitError(
            f"rate limit reached for key `{owner.name}`; retry in {wait:.1f}s", retry_after=wait
        )
    return RateLimitError(
        f"{owner.kind} rate limit exceeded for {owner.kind} `{owner.name}` "
        f"({owner.limit_name}); retry in {wait:.1f}s",
        retry_after=wait,
        code=f"{owner.kind}_rate_limit_exceeded",
    )


async def reconcile_tokens(rt: Runtime, ctx: RequestContext, delta: int) -> None:
    for s in scopes(ctx):
        if s.tpm:
            await rt.limiter.adjust(f"{s.id}:tpm", s.tpm, delta)


def budget_slots(key: KeyRecord, ctx: RequestContext) -> list[tuple[Slot, Owner, str]]:
    """Every budget the request is charged to: (slot, owner, period name)."""
    out: list[tuple[Slot, Owner, str]] = []
    if key.budget_pico is not None:
        slot = Slot(key.id, period_key(key.budget_period), key.budget_pico)
        out.append((slot, Owner("key", key.name), key.budget_period))
    for s in scopes(ctx):
        if s.budget_pico is not None:
            slot = Slot(s.id, period_key(s.budget_period), s.budget_pico)
            out.append((slot, Owner(s.kind, s.name), s.budget_period))
    return out


def budget_refusal(
    refusal: Refusal, charged: Sequence[tuple[Slot, Owner, str]], worst: int
) -> QuotaExceededError:
    slot, owner, period = charged[refusal.slot]
    code = None if owner.kind == "key" else f"{owner.kind}_budget_exceeded"
    what = "budget" if owner.kind == "key" else f"{owner.kind} budget"
    if refusal.frozen:
        return QuotaExceededError(
            f"{what} frozen for {owner.kind} `{owner.name}` ({period}): an upstream "
            "reported more usage than was reserved; it reopens next period or when "
            f"the {owner.kind}'s budget is changed",
            code=code,
        )
    head = (
        f"budget exhausted for key `{owner.name}`"
        if owner.kind == "key"
        else f"{owner.kind} budget exceeded for {owner.kind} `{owner.name}`"
    )
    return QuotaExceededError(
        f"{head}: {pico_to_str(refusal.left)} USD left of {pico_to_str(slot.budget)} "
        f"({period}); this request may cost up to {pico_to_str(worst)} USD",
        code=code,
    )
