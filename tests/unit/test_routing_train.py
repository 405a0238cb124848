"""The router trainer's pieces: logistic regression, Wilson interval, threshold guarantee."""

from __future__ import annotations

import numpy as np

from pilothouse.routing.train import Pair, fit_logistic, predict, quality_share, wilson


def test_logistic_regression_separates_and_is_regularised() -> None:
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(-2, 1, (50, 3)), rng.normal(2, 1, (50, 3))])
    y = np.array([0.0] * 50 + [1.0] * 50)
    w, b = fit_logistic(x, y, l2=1.0)
    accuracy = float(((predict(x, w, b) > 0.5) == (y == 1)).mean())
    assert accuracy > 0.95
    w_strong, _ = fit_logistic(x, y, l2=1000.0)
    assert np.linalg.norm(w_strong) < np.linalg.norm(w)


def test_wilson_interval_matches_the_formula() -> None:
    low, high = wilson(8, 10)
    assert round(low, 3) == 0.490 and round(high, 3) == 0.943
    assert wilson(0, 0) == (0.0, 1.0)


def test_quality_share_counts_cheap_cases_at_cheap_quality() -> None:
    held = [Pair("a", "", 0.0, 1.0), Pair("b", "", 1.0, 1.0)]
    probs = np.array([0.9, 0.1])
    point, low, high = quality_share(held, probs, 0.5, 200, 0)
    assert point == 1.0 and low <= point <= high
    everything_cheap, _, _ = quality_share(held, probs, 1.0, 200, 0)
    assert everything_cheap == 0.5
