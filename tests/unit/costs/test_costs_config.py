"""The ``costs:`` section: defaults that work, and typos that fail the boot with a key path."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pilothouse.config.load import parse_settings
from pilothouse.errors import ConfigError


def test_defaults_alert_at_half_four_fifths_and_full_budget() -> None:
    costs = parse_settings({}).costs
    assert costs.budget_alert_thresholds == [0.5, 0.8, 1.0]
    assert costs.anomaly.enabled
    assert costs.anomaly.scopes == ["key", "team"]
    assert costs.anomaly.min_spend_usd == Decimal("1")


def test_yaml_values_load_exactly() -> None:
    costs = parse_settings(
        {
            "costs": {
                "anomaly": {"lookback_days": 7, "threshold": 4.5, "min_spend_usd": 0.1},
                "budget_alert_thresholds": [0.9, 0.25],
            }
        }
    ).costs
    assert costs.anomaly.lookback_days == 7
    assert costs.anomaly.threshold == 4.5
    assert costs.anomaly.min_spend_usd == Decimal("0.1")  # not 0.1000000000000000055...
    assert costs.budget_alert_thresholds == [0.9, 0.25]


@pytest.mark.parametrize(
    ("section", "where", "why"),
    [
        ({"budget_alert_thresholds": [0.5, 80]}, "costs", "fractions in (0, 1]"),
        ({"budget_alert_thresholds": [0.5, 0.5]}, "costs", "must not repeat"),
        ({"anomaly": {"threshold": 0}}, "costs.anomaly.threshold", ">"),
        ({"anomaly": {"min_spend_usd": 0}}, "costs.anomaly", "min_spend_usd must be > 0"),
        ({"anomaly": {"lookback_days": 1}}, "costs.anomaly.lookback_days", ">= 2"),
        (
            {"anomaly": {"lookback_days": 3, "min_baseline_days": 5}},
            "costs.anomaly",
            "cannot exceed lookback_days",
        ),
        ({"anomaly": {"scopes": ["user"]}}, "costs.anomaly.scopes[0]", "'user'"),
        ({"anomaly": {"treshold": 3}}, "costs.anomaly.treshold", "unknown key"),
    ],
)
def test_mistakes_name_the_key_path(section: dict[str, object], where: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({"costs": section}, source="pilothouse.yaml")
    message = info.value.message
    assert message.startswith(f"pilothouse.yaml: {where}:"), message
    assert why in message
