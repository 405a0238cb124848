"""Target-level strategies: the order in which one alias's targets are tried.

``ordered`` keeps the config order (fallbacks). ``weighted`` draws the order
by weight (Efraimidis-Spirakis keys, so a target's chance to go first is its
weight share and the rest stay as fallbacks). ``latency`` tries the target
with the lowest EWMA first (time to first token for streams, total latency
otherwise; a target never measured goes first, so every one gets measured).
``cost`` tries the cheapest target that serves the request's needs (tools,
vision, json_schema…) at the price table's price for its estimated tokens.
Open breakers go last in every strategy; the router skips them anyway.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pilothouse.costs.pricing import PriceTable
from pilothouse.errors import InvalidRequestError
from pilothouse.routing.features import request_needs
from pilothouse.tokens import estimate_input


@dataclass(slots=True)
class Ewma:
    """Exponentially weighted moving averages of one target's latency and TTFT (seconds)."""

    alpha: float = 0.3
    latency: float | None = None
    ttft: float | None = None

    def observe(self, seconds: float, *, first_token: bool) -> None:
        if first_token:
            self.ttft = seconds if self.ttft is None else self._mix(self.ttft, seconds)
        else:
            self.latency = seconds if self.latency is None else self._mix(self.latency, seconds)

    def _mix(self, old: float, new: float) -> float:
        return old + self.alpha * (new - old)

    def score(self, stream: bool) -> float:
        """Expected wait for this request kind; 0.0 for a target not measured yet."""
        first, second = (self.ttft, self.latency) if stream else (self.latency, self.ttft)
        value = first if first is not None else second
        return 0.0 if value is None else value


def healthy_first(targets: Sequence[Any]) -> list[Any]:
    return sorted(targets, key=lambda t: t.breaker.blocked())


def weighted(targets: Sequence[Any], rng: random.Random) -> tuple[list[Any], str]:
    def key(t: Any) -> float:
        w = t.config.weight
        return rng.random() ** (1.0 / w) if w > 0 else -1.0

    order = healthy_first(sorted(targets, key=key, reverse=True))
    total = sum(t.config.weight for t in targets) or 1.0
    first = order[0]
    return order, f"weight {first.config.weight:g} of {total:g}"


def by_latency(
    targets: Sequence[Any], ewmas: dict[str, Ewma], stream: bool
) -> tuple[list[Any], str]:
    def score(t: Any) -> float:
        e = ewmas.get(t.label)
        return 0.0 if e is None else e.score(stream)

    order = healthy_first(sorted(targets, key=score))
    kind = "ttft" if stream else "latency"
    value = score(order[0])
    shown = f"ewma {kind} {value * 1000:.1f}ms" if value else f"{kind} not measured yet"
    return order, f"{shown} (fastest of {len(targets)})"


def by_cost(
    targets: Sequence[Any], prices: PriceTable, request: dict[str, Any], output_estimate: int
) -> tuple[list[Any], str]:
    needs = request_needs(request)
    serving = [
        t
        for t in targets
        if t.config.capabilities is None or needs <= frozenset(t.config.capabilities)
    ]
    if not serving:
        raise InvalidRequestError(
            "no target of this model serves a request that needs " + ", ".join(sorted(needs)),
            param="model",
            code="no_capable_target",
        )
    tokens_in = estimate_input(request)
    limit = request.get("max_completion_tokens") or request.get("max_tokens")
    tokens_out = limit if isinstance(limit, int) and limit > 0 else output_estimate

    def cost(t: Any) -> int:
        price = prices.get(t.config.model)
        if price is None:
            return 2**62  # unpriced: only after every priced target
        return price.worst_case_pico(tokens_in, min(tokens_out, t.config.max_output_tokens))

    order = healthy_first(sorted(serving, key=cost))
    estimate = cost(order[0])
    shown = f"{estimate / 1e12:.6f} USD est." if estimate < 2**62 else "unpriced"
    needs_text = f" serving {','.join(sorted(needs))}" if needs else ""
    return order, f"cheapest{needs_text}: {shown}"
