"""Alias-level routing policies: compiled once per config, decided once per request.

A ``rules`` alias picks another alias (the first rule that holds, else
``default``); ``cascade`` names the aliases it will try in order. Target-level
strategies (``weighted``, ``latency``, ``cost``) order one alias's own targets
inside the router (:mod:`pilothouse.routing.strategies`). Policies point only
at aliases that serve from their own targets, so a decision is one step and
cannot loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pilothouse.routing.config import ALIAS_STRATEGIES, RoutingPolicy
from pilothouse.routing.difficulty import DifficultyRouter, difficulty_router
from pilothouse.routing.features import Features
from pilothouse.routing.rules import CompiledRule, RuleError, compile_rules, rule_name

BudgetShare = Callable[[], Awaitable[float | None]]


@dataclass(slots=True)
class RouteDecision:
    """What routing decided for one request: read by headers, spans and the usage record."""

    policy: str  # the strategy of the alias the client asked for
    requested: str
    alias: str  # the alias that serves
    rule: str | None = None
    reason: str = ""
    degraded: bool = False
    degrade_reason: str | None = None  # all_open | forced
    steps: list[dict[str, Any]] = field(default_factory=list)  # cascade attempts

    def header(self) -> str:
        parts = [self.policy]
        if self.rule:
            parts.append(f"rule={self.rule}")
        parts.append(f"alias={self.alias}")
        if self.degraded:
            parts.append(f"degraded={self.degrade_reason}")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class AliasPolicy:
    alias: str
    strategy: str
    rules: tuple[CompiledRule, ...] = ()
    default: str | None = None
    difficulty: DifficultyRouter | None = None
    cascade: tuple[str, ...] = ()

    async def decide(self, f: Features, budget_share: BudgetShare) -> RouteDecision:
        """The first rule that holds picks the alias; lazy features load when first reached."""
        for rule in self.rules:
            for need in rule.needs:
                if need not in f.loaded:
                    await self._load(need, f, budget_share)
            if rule.matches(f):
                return RouteDecision(self.strategy, self.alias, rule.use, rule.name, rule.reason(f))
        target = self.default or self.alias
        return RouteDecision(self.strategy, self.alias, target, "default", "no rule matched")

    async def _load(self, need: str, f: Features, budget_share: BudgetShare) -> None:
        f.loaded.add(need)
        if need == "budget_used":
            f.budget_used = await budget_share()
        elif need == "difficulty" and self.difficulty is not None:
            f.difficulty = await self.difficulty.score(f.body)


def compile_policies(models: dict[str, Any]) -> dict[str, AliasPolicy]:
    """The policies of every alias that routes to other aliases (``rules``, ``cascade``)."""
    out: dict[str, AliasPolicy] = {}
    for alias, model in models.items():
        policy: RoutingPolicy | None = model.routing
        if policy is None or policy.strategy not in ALIAS_STRATEGIES:
            continue
        if policy.strategy == "cascade":
            assert policy.cascade is not None
            out[alias] = AliasPolicy(alias, "cascade", cascade=tuple(policy.cascade.steps))
            continue
        rules = compile_rules(policy.rules)
        needs_difficulty = any("difficulty" in r.needs for r in rules)
        scorer = None
        if needs_difficulty or policy.difficulty is not None:
            scorer = difficulty_router(policy.difficulty or _default_difficulty())
        out[alias] = AliasPolicy(alias, "rules", rules, policy.default, scorer)
    return out


def _default_difficulty() -> Any:
    from pilothouse.routing.config import DifficultyConfig

    return DifficultyConfig()


def validate(models: dict[str, Any]) -> tuple[str, str] | None:
    """The first mistake in the routing/degrade sections as (key path, why), or None."""
    for alias, model in models.items():
        where = f"models.{alias}"
        policy: RoutingPolicy | None = model.routing
        picks_alias = policy is not None and policy.strategy in ALIAS_STRATEGIES
        if not model.targets and not picks_alias:
            return f"{where}.targets", "needs at least one target (or routing.strategy: rules)"
        if policy is not None:
            problem = _validate_policy(alias, policy, models, bool(model.targets))
            if problem is not None:
                return problem
        degrade = model.degrade
        if degrade is not None:
            why = _servable(degrade.when_all_open, alias, models)
            if why is not None:
                return f"{where}.degrade.when_all_open", why
    return None


def _servable(target: str, alias: str, models: dict[str, Any]) -> str | None:
    """Why ``target`` cannot be picked by a policy of ``alias`` (None: it can)."""
    if target == alias:
        return f"cannot point at `{alias}` itself"
    if target not in models:
        known = ", ".join(sorted(models)) or "none defined"
        return f"unknown model alias {target!r} (models: {known})"
    policy = models[target].routing
    if policy is not None and policy.strategy in ALIAS_STRATEGIES:
        return f"`{target}` routes by {policy.strategy} itself; point at an alias with targets"
    return None


def _validate_policy(
    alias: str, policy: RoutingPolicy, models: dict[str, Any], has_targets: bool
) -> tuple[str, str] | None:
    where = f"models.{alias}.routing"
    if policy.rules and policy.strategy != "rules":
        return f"{where}.rules", f"rules need `strategy: rules` (strategy is {policy.strategy})"
    if policy.cascade is not None and policy.strategy != "cascade":
        return f"{where}.cascade", "needs `strategy: cascade`"
    if policy.strategy == "rules":
        if not policy.rules:
            return f"{where}.rules", "strategy rules needs at least one rule"
        for i, rule in enumerate(policy.rules):
            why = _servable(rule.use, alias, models)
            if why is not None:
                return f"{where}.rules[{i}].use", f"rule {rule_name(rule, i)!r}: {why}"
        try:
            compile_rules(policy.rules)
        except RuleError as exc:
            index = _rule_index(str(exc), policy)
            return f"{where}.rules[{index}].when", str(exc)
        if policy.default is None and not has_targets:
            return f"{where}.default", "needed when the alias has no targets of its own"
        if policy.default is not None:
            why = _servable(policy.default, alias, models)
            if why is not None:
                return f"{where}.default", why
        if policy.difficulty is not None:
            try:
                difficulty_router(policy.difficulty)
            except Exception as exc:
                return f"{where}.difficulty", getattr(exc, "message", str(exc))
    if policy.strategy == "cascade":
        if policy.cascade is None or len(policy.cascade.steps) < 2:
            return f"{where}.cascade.steps", "a cascade needs at least two aliases"
        for i, step in enumerate(policy.cascade.steps):
            why = _servable(step, alias, models)
            if why is not None:
                return f"{where}.cascade.steps[{i}]", why
        judge = policy.cascade.judge
        if judge is not None:
            why = _servable(judge.alias, alias, models)
            if why is not None:
                return f"{where}.cascade.judge.alias", why
    return None


def _rule_index(message: str, policy: RoutingPolicy) -> int:
    for i, rule in enumerate(policy.rules):
        if message.startswith(f"rule {rule_name(rule, i)!r}:"):
            return i
    return 0
