"""The ``costs:`` config section: spend anomaly detection and budget alert thresholds.

Same rules as every config section: frozen, unknown keys rejected, values
checked at start-up so a typo fails the boot rather than silently muting an
alert. Money is a ``Decimal`` (YAML ``1.5`` or ``"1.5"`` both load exactly).
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Annotated, Literal

import msgspec

Scope = Literal["key", "team"]


def exact(value: float) -> Fraction:
    """The decimal a user wrote (``0.8``), not its binary float (0.80000000000000004...).

    Thresholds compare against exact pico-USD sums, where that difference
    decides whether spending exactly 80 % crosses the 80 % threshold.
    """
    return Fraction(Decimal(repr(value)))


def _default_thresholds() -> list[float]:
    return [0.5, 0.8, 1.0]


def _default_scopes() -> list[Scope]:
    return ["key", "team"]


class AnomalyConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Robust spend anomaly detection (see docs/costs.md for the maths).

    The last hour's spend of each key and team is compared with the spend in
    the same hour of each of the previous ``lookback_days`` days: an alert
    fires when its robust z-score reaches ``threshold``. ``min_spend_usd`` is
    the smallest rise over the median that can ever alert (it floors the
    scale), so quiet keys with flat history cannot page anyone over cents.
    """

    enabled: bool = True
    lookback_days: Annotated[int, msgspec.Meta(ge=2, le=90)] = 14
    min_baseline_days: Annotated[int, msgspec.Meta(ge=1)] = 3
    threshold: Annotated[float, msgspec.Meta(gt=0.0)] = 5.0
    min_spend_usd: Decimal = Decimal("1")
    evaluate_interval_s: Annotated[float, msgspec.Meta(gt=0.0)] = 300.0
    scopes: list[Scope] = msgspec.field(default_factory=_default_scopes)
    severity: Literal["page", "ticket"] = "ticket"

    def __post_init__(self) -> None:
        if not self.min_spend_usd > 0:
            raise ValueError(f"min_spend_usd must be > 0, got {self.min_spend_usd}")
        if self.min_baseline_days > self.lookback_days:
            raise ValueError(
                f"min_baseline_days ({self.min_baseline_days}) cannot exceed "
                f"lookback_days ({self.lookback_days})"
            )
        if len(set(self.scopes)) != len(self.scopes):
            raise ValueError("scopes must not repeat")


class CostsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Cost governance settings.

    ``budget_alert_thresholds`` are fractions of each key's budget; every
    threshold fires once per budget period. ``budget_alert_interval_s`` is how
    often the periodic sweep re-reads spend from the ledger (it also resolves
    alerts when a new period starts).
    """

    anomaly: AnomalyConfig = msgspec.field(default_factory=AnomalyConfig)
    budget_alert_thresholds: list[float] = msgspec.field(default_factory=_default_thresholds)
    budget_alert_interval_s: Annotated[float, msgspec.Meta(gt=0.0)] = 60.0

    def __post_init__(self) -> None:
        for value in self.budget_alert_thresholds:
            if not 0.0 < value <= 1.0:
                raise ValueError(
                    f"budget_alert_thresholds must be fractions in (0, 1], got {value:g}"
                )
        if len(set(self.budget_alert_thresholds)) != len(self.budget_alert_thresholds):
            raise ValueError("budget_alert_thresholds must not repeat")
