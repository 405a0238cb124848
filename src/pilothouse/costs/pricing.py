"""Exact cost of usage from a price table (bundled, overridable in config).

Per-token prices are kept as integer pico-USD where the per-million price has
at most six decimals (every real price list), so a request's cost is an exact
integer; anything finer is rounded once per request, half-up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from importlib.resources import files

from pilothouse.config.schema import PriceConfig
from pilothouse.providers.base import Usage

_PICO_PER_TOKEN_PER_USD_PER_M = Decimal(10**6)


@dataclass(frozen=True, slots=True)
class TokenPrice:
    """Pico-USD per token (Decimal so sub-pico prices stay exact until rounding)."""

    input: Decimal
    output: Decimal
    cached_input: Decimal

    @classmethod
    def from_per_million(cls, price: PriceConfig) -> TokenPrice:
        cached = price.cached_input if price.cached_input is not None else price.input
        k = _PICO_PER_TOKEN_PER_USD_PER_M
        return cls(price.input * k, price.output * k, cached * k)

    def cost_pico(self, usage: Usage) -> int:
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        total = (
            (usage.input_tokens - cached) * self.input
            + cached * self.cached_input
            + usage.output_tokens * self.output
        )
        return int(total.to_integral_value(rounding=ROUND_HALF_UP))

    def worst_case_pico(self, input_tokens: int, output_tokens: int) -> int:
        total = input_tokens * self.input + output_tokens * self.output
        return int(total.to_integral_value(rounding="ROUND_CEILING"))


FREE = TokenPrice(Decimal(0), Decimal(0), Decimal(0))


def bundled_prices() -> dict[str, PriceConfig]:
    raw = json.loads(files("pilothouse.costs").joinpath("prices.json").read_text("utf-8"))
    out = {}
    for model, spec in raw.items():
        if model.startswith("_"):
            continue
        out[model] = PriceConfig(
            input=Decimal(spec["input"]),
            output=Decimal(spec["output"]),
            cached_input=Decimal(spec["cached_input"]) if "cached_input" in spec else None,
        )
    return out


class PriceTable:
    """Model name → :class:`TokenPrice`; config entries override the bundled table."""

    def __init__(self, overrides: dict[str, PriceConfig] | None = None) -> None:
        merged = bundled_prices()
        merged.update(overrides or {})
        self._prices = {name: TokenPrice.from_per_million(p) for name, p in merged.items()}

    def get(self, model: str | None) -> TokenPrice | None:
        if not model:
            return None
        price = self._prices.get(model)
        if price is None and "/" in model:
            price = self._prices.get(model.rsplit("/", 1)[1])
        return price

    def known(self, model: str) -> bool:
        return self.get(model) is not None

    def cost_pico(self, model: str | None, usage: Usage) -> int:
        price = self.get(model)
        return price.cost_pico(usage) if price is not None else 0
