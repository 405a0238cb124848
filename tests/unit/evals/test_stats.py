"""The statistics against SciPy/NumPy and hand-computed values on fixed data."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats as sps

from pilothouse.evals.stats import (
    bootstrap_ci,
    bootstrap_means,
    cohen_kappa,
    confusion_matrix,
    mcnemar,
    paired_bootstrap_ci,
    quantile,
    seed_for,
    sign_flip_test,
)

BINARY = [1] * 72 + [0] * 28  # 72% pass on 100 cases
SCORES = [4.0, 5.0, 3.0, 4.0, 2.0, 5.0, 4.0, 3.0, 5.0, 1.0, 4.0, 4.0, 3.0, 5.0, 2.0, 4.0]
# Continuous values (e.g. grounded shares): the bootstrap distribution has no big steps.
_rng = random.Random(42)
CONTINUOUS = [round(_rng.betavariate(4, 2), 4) for _ in range(60)]


def test_quantile_matches_numpy_default() -> None:
    data = sorted([3.1, 0.2, 9.9, 4.4, 4.4, 7.0, 1.5])
    for q in (0.0, 0.025, 0.1, 0.5, 0.9, 0.975, 1.0):
        assert quantile(data, q) == pytest.approx(float(np.percentile(data, q * 100)))


@pytest.mark.parametrize(
    "data", [BINARY, SCORES, CONTINUOUS], ids=["binary", "judge-scores", "continuous"]
)
def test_bootstrap_ci_agrees_with_scipy_percentile_bootstrap(data: list[float]) -> None:
    ours = bootstrap_ci(data, resamples=20_000, seed=1)
    theirs = sps.bootstrap(
        (np.array(data),),
        np.mean,
        n_resamples=20_000,
        method="percentile",
        confidence_level=0.95,
        random_state=np.random.default_rng(2),
    ).confidence_interval
    assert ours.mean == pytest.approx(float(np.mean(data)))
    assert ours.n == len(data)
    # Two independent Monte Carlo estimates of the same interval agree to within 0.01,
    # or one step of the resampled mean's lattice (1/n of the value range) for discrete data.
    step = (max(data) - min(data)) / len(data) if len(set(data)) < 10 else 0.0
    assert ours.low == pytest.approx(theirs.low, abs=0.01 + step)
    assert ours.high == pytest.approx(theirs.high, abs=0.01 + step)


def test_bootstrap_of_binary_data_is_near_the_normal_approximation() -> None:
    # 72/100: the textbook Wald interval is 0.72 ± 1.96·sqrt(.72·.28/100) = [0.632, 0.808].
    ci = bootstrap_ci(BINARY, resamples=20_000, seed=3)
    half = 1.96 * math.sqrt(0.72 * 0.28 / 100)
    assert ci.low == pytest.approx(0.72 - half, abs=0.015)
    assert ci.high == pytest.approx(0.72 + half, abs=0.015)


def test_binary_fast_path_has_the_distribution_of_plain_resampling() -> None:
    fast = bootstrap_means(BINARY, resamples=20_000, seed=5)
    rng = random.Random(9)
    slow = [sum(rng.choices(BINARY, k=100)) / 100 for _ in range(20_000)]
    assert float(np.mean(fast)) == pytest.approx(float(np.mean(slow)), abs=0.002)
    assert float(np.std(fast)) == pytest.approx(float(np.std(slow)), abs=0.003)
    assert float(np.std(fast)) == pytest.approx(math.sqrt(0.72 * 0.28 / 100), abs=0.003)


def test_bootstrap_is_deterministic_per_seed_and_degenerate_for_constant_data() -> None:
    assert bootstrap_ci(CONTINUOUS, seed=7) == bootstrap_ci(CONTINUOUS, seed=7)
    assert bootstrap_ci(CONTINUOUS, seed=7) != bootstrap_ci(CONTINUOUS, seed=8)
    constant = bootstrap_ci([1.0] * 30)
    assert (constant.mean, constant.low, constant.high) == (1.0, 1.0, 1.0)
    one = bootstrap_ci([0.25])
    assert (one.low, one.high, one.n) == (0.25, 0.25, 1)
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_seed_for_is_stable_across_processes() -> None:
    # crc32 based, so this literal holds in every interpreter (unlike hash()).
    assert seed_for("exact.pass_rate", "") == seed_for("exact.pass_rate", "")
    assert seed_for("a", "b") != seed_for("a", "c")
    assert seed_for("exact.pass_rate", "", base=0) == 1310674096


def test_paired_bootstrap_ci_of_differences() -> None:
    current = [1, 1, 1, 0, 1, 1, 0, 1, 1, 1] * 5
    baseline = [1, 0, 1, 0, 1, 0, 0, 1, 1, 0] * 5
    ci = paired_bootstrap_ci(current, baseline, resamples=20_000, seed=4)
    assert ci.mean == pytest.approx(0.3)
    diffs = np.array(current) - np.array(baseline)
    theirs = sps.bootstrap(
        (diffs,),
        np.mean,
        n_resamples=20_000,
        method="percentile",
        random_state=np.random.default_rng(0),
    ).confidence_interval
    # Differences are 0/1 on 50 cases: quantiles move in steps of 1/50.
    assert ci.low == pytest.approx(theirs.low, abs=0.021)
    assert ci.high == pytest.approx(theirs.high, abs=0.021)
    with pytest.raises(ValueError):
        paired_bootstrap_ci([1, 0], [1])


@pytest.mark.parametrize(("to_pass", "to_fail"), [(0, 0), (1, 0), (3, 9), (2, 10), (7, 7), (0, 12)])
def test_mcnemar_exact_is_scipys_two_sided_binomial_test(to_pass: int, to_fail: int) -> None:
    p, method = mcnemar(to_pass, to_fail)
    assert method == "mcnemar-exact"
    n = to_pass + to_fail
    expected = 1.0 if n == 0 else sps.binomtest(to_pass, n, 0.5).pvalue
    assert p == pytest.approx(expected, rel=1e-12)


def test_mcnemar_uses_continuity_corrected_chi_square_for_many_discordant_pairs() -> None:
    p, method = mcnemar(10, 30)
    assert method == "mcnemar-chi2"
    statistic = (abs(10 - 30) - 1) ** 2 / 40
    assert p == pytest.approx(float(sps.chi2.sf(statistic, df=1)), rel=1e-9)
    # Known value: b=10, c=30 -> chi2 = 9.025, p = 0.00266.
    assert p == pytest.approx(0.002663, abs=1e-5)


def test_sign_flip_exact_matches_scipy_permutation_test() -> None:
    x = np.array([4.0, 5.0, 3.0, 4.0, 5.0, 4.0, 5.0, 3.0, 4.0])
    y = np.array([3.0, 4.0, 3.0, 2.0, 4.0, 4.0, 3.0, 3.0, 5.0])
    p, method = sign_flip_test(list(x - y))
    assert method == "sign-flip-exact"
    theirs = sps.permutation_test(
        (x, y),
        lambda a, b: np.mean(a - b),
        permutation_type="samples",
        n_resamples=np.inf,
    ).pvalue
    assert p == pytest.approx(theirs, rel=1e-9)


def test_sign_flip_monte_carlo_for_many_differences() -> None:
    rng = random.Random(0)
    diffs = [rng.gauss(0.3, 1.0) for _ in range(60)]
    p, method = sign_flip_test(diffs, resamples=20_000, seed=1)
    assert method == "sign-flip-monte-carlo"
    x = np.array(diffs)
    theirs = sps.permutation_test(
        (x, np.zeros_like(x)),
        lambda a, b: np.mean(a - b),
        permutation_type="samples",
        n_resamples=20_000,
        random_state=np.random.default_rng(3),
    ).pvalue
    assert p == pytest.approx(theirs, abs=0.01)
    assert sign_flip_test([0.0, 0.0]) == (1.0, "sign-flip-exact")


def test_cohen_kappa_textbook_example() -> None:
    # Two raters, 50 items: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> kappa = 0.4.
    assert cohen_kappa([[20, 5], [10, 15]]) == pytest.approx(0.4)


def test_cohen_kappa_edges() -> None:
    assert cohen_kappa([[10, 0], [0, 10]]) == pytest.approx(1.0)
    assert cohen_kappa([[0, 10], [10, 0]]) == pytest.approx(-1.0)
    # Agreement no better than chance.
    assert cohen_kappa([[25, 25], [25, 25]]) == pytest.approx(0.0)
    # Both raters said "pass" for everything: chance agreement is perfect, kappa undefined.
    assert cohen_kappa([[10, 0], [0, 0]]) is None
    assert cohen_kappa([[0, 0], [0, 0]]) is None


def test_cohen_kappa_three_categories_by_hand() -> None:
    matrix = [[10, 2, 1], [3, 12, 2], [1, 1, 8]]
    total = 40
    po = (10 + 12 + 8) / total
    rows = [13, 17, 10]
    cols = [14, 15, 11]
    pe = sum(r * c for r, c in zip(rows, cols, strict=True)) / total**2
    assert cohen_kappa(matrix) == pytest.approx((po - pe) / (1 - pe))


def test_confusion_matrix_counts_rows_by_first_rater() -> None:
    human = ["pass", "pass", "fail", "fail", "pass"]
    judge = ["pass", "fail", "fail", "pass", "pass"]
    assert confusion_matrix(human, judge, ["pass", "fail"]) == [[2, 1], [1, 1]]
