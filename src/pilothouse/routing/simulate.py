"""Replay recorded usage through a candidate routing policy: cost and alias mix, before deploying.

Each usage record of a chat request is fed to the candidate policy of the
alias it asked for (``route_requested``; ``alias`` for records older than
routing policies), with what the record holds: token counts, metadata, the
key (name, metadata, budget), its time and the key's spend so far in the
replayed window. The candidate's alias is priced with the same tokens at its
first target's price (the cheapest serving one for ``strategy: cost``; a
cascade's first step, since escalations cannot be replayed). Conditions on
what a record does not keep — ``requires`` and ``difficulty`` — do not hold.
The per-request cost change has a paired bootstrap interval.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pilothouse.config.schema import ModelConfig, Settings
from pilothouse.costs.pricing import PriceTable
from pilothouse.evals.stats import paired_bootstrap_ci
from pilothouse.limits.keys import KeyRecord
from pilothouse.providers.base import Usage
from pilothouse.routing.features import Features
from pilothouse.routing.policy import AliasPolicy, compile_policies

PICO = Decimal(10**12)


@dataclass
class AliasMix:
    actual_requests: int = 0
    actual_errors: int = 0  # recorded status >= 400 (replayed as recorded: same tokens)
    simulated_requests: int = 0
    actual_pico: int = 0
    simulated_pico: int = 0


@dataclass
class Report:
    requests: int = 0
    errors: int = 0
    actual_pico: int = 0
    simulated_pico: int = 0
    aliases: dict[str, AliasMix] = field(default_factory=dict)
    rules: Counter[str] = field(default_factory=Counter)
    changed: int = 0
    unpriced: int = 0
    diff_usd: dict[str, float] | None = None  # mean per-request change with a 95% interval

    def public(self) -> dict[str, Any]:
        def usd(pico: int) -> str:
            return str((Decimal(pico) / PICO).quantize(Decimal("0.000001")))

        ratio = self.simulated_pico / self.actual_pico if self.actual_pico else None
        return {
            "requests": self.requests,
            "errors": self.errors,
            "changed_alias": self.changed,
            "actual_cost_usd": usd(self.actual_pico),
            "simulated_cost_usd": usd(self.simulated_pico),
            "cost_ratio": round(ratio, 4) if ratio is not None else None,
            "per_request_change_usd": self.diff_usd,
            "unpriced_requests": self.unpriced,
            "rules": dict(self.rules.most_common()),
            "aliases": {
                alias: {
                    "actual_requests": m.actual_requests,
                    "actual_errors": m.actual_errors,
                    "simulated_requests": m.simulated_requests,
                    "actual_cost_usd": usd(m.actual_pico),
                    "simulated_cost_usd": usd(m.simulated_pico),
                }
                for alias, m in sorted(self.aliases.items())
            },
        }


class Simulator:
    """The candidate's policies and prices, applied to one record at a time."""

    def __init__(self, candidate: Settings) -> None:
        self.models = candidate.models
        self.policies: dict[str, AliasPolicy] = compile_policies(candidate.models)
        self.prices = PriceTable(candidate.prices)

    async def replay(self, rows: list[dict[str, Any]], keys: dict[str, KeyRecord]) -> Report:
        report = Report()
        spent: Counter[str] = Counter()
        actual_usd: list[float] = []
        simulated_usd: list[float] = []
        for row in rows:
            if row.get("endpoint") != "chat" or row.get("cache_hit"):
                continue
            asked = row.get("route_requested") or row.get("alias")
            if not asked:
                continue
            key = keys.get(row.get("key_id") or "")
            alias, rule = await self._decide(asked, row, key, spent)
            usage = Usage(row["input_tokens"], row["output_tokens"], row["cached_input_tokens"])
            cost = self._cost(alias, usage)
            if cost is None:
                report.unpriced += 1
                cost = row["cost_pico"] if alias == row.get("alias") else 0
            actual = int(row["cost_pico"] or 0)
            if key is not None:
                spent[key.id] += actual
            report.requests += 1
            report.actual_pico += actual
            report.simulated_pico += cost
            report.rules[rule] += 1
            served = row.get("alias") or asked
            report.changed += served != alias
            report.aliases.setdefault(served, AliasMix()).actual_requests += 1
            report.aliases[served].actual_pico += actual
            failed = int(row.get("status") or 200) >= 400
            report.errors += failed
            report.aliases[served].actual_errors += failed
            report.aliases.setdefault(alias, AliasMix()).simulated_requests += 1
            report.aliases[alias].simulated_pico += cost
            actual_usd.append(actual / 1e12)
            simulated_usd.append(cost / 1e12)
        if len(actual_usd) >= 2:
            ci = paired_bootstrap_ci(simulated_usd, actual_usd)
            report.diff_usd = {"mean": ci.mean, "low": ci.low, "high": ci.high, "level": 0.95}
        return report

    async def _decide(
        self, asked: str, row: dict[str, Any], key: KeyRecord | None, spent: Counter[str]
    ) -> tuple[str, str]:
        policy = self.policies.get(asked)
        if policy is None:
            return asked, "none"
        if policy.strategy == "cascade":
            return policy.cascade[0], "cascade[0]"
        features = Features({}, row.get("metadata"), key, now=row.get("created_at"))
        features._input_tokens = int(row["input_tokens"] or 0)
        features.loaded.add("difficulty")  # not in the record: difficulty conditions fail

        async def share() -> float | None:
            if key is None or not key.budget_pico:
                return None
            return spent[key.id] / key.budget_pico

        decision = await policy.decide(features, share)
        return decision.alias, decision.rule or "default"

    def _cost(self, alias: str, usage: Usage) -> int | None:
        model: ModelConfig | None = self.models.get(alias)
        if model is None or not model.targets:
            return None
        strategy = model.routing.strategy if model.routing is not None else "ordered"
        costs = []
        for target in model.targets:
            price = self.prices.get(target.model)
            if price is not None:
                costs.append(price.cost_pico(usage))
            elif strategy != "cost":
                return None
            if strategy != "cost":
                break
        return min(costs) if costs else None
