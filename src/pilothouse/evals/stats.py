"""Statistics for eval results, in the standard library only (no SciPy at run time).

Every number an eval reports comes with an interval, and every comparison
with a test, so this module provides: the mean with a percentile bootstrap
confidence interval, the paired bootstrap for differences, McNemar's test for
paired pass/fail outcomes, a sign-flip permutation test for paired scores,
and Cohen's kappa for judge-versus-human agreement. Resampling is seeded, so
a report regenerated from the same results shows the same intervals.
"""

from __future__ import annotations

import bisect
import math
import random
import zlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from fractions import Fraction

DEFAULT_RESAMPLES = 2000
EXACT_MCNEMAR_BELOW = 25  # discordant pairs; above this the chi-square approximation is good
EXACT_SIGN_FLIP_UP_TO = 12  # non-zero differences; 2**12 sign patterns are enumerated


@dataclass(frozen=True, slots=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int


def seed_for(*parts: str, base: int = 0) -> int:
    """A stable seed per metric (``hash()`` is salted per process, crc32 is not)."""
    return (base * 1_000_003 + zlib.crc32("\x1f".join(parts).encode())) & 0xFFFFFFFF


def mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of sorted data (NumPy's default definition)."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


def _is_binary(values: Sequence[float]) -> bool:
    return all(v == 0 or v == 1 for v in values)


def _binomial_cdf(n: int, p: float) -> list[float]:
    """CDF of Binomial(n, p) at 0..n, from log-pmfs so large n cannot underflow."""
    log_p, log_q = math.log(p), math.log1p(-p)
    log_n = math.lgamma(n + 1)
    cdf: list[float] = []
    total = 0.0
    for k in range(n + 1):
        log_pmf = log_n - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p
        total += math.exp(log_pmf + (n - k) * log_q)
        cdf.append(total)
    return cdf


def _binary_means(values: Sequence[float], resamples: int, rng: random.Random) -> list[float]:
    """Bootstrap means of 0/1 data: a resample's count of ones is Binomial(n, p̂).

    Drawing that count directly is the same distribution as resampling n
    values, at O(log n) per resample instead of O(n).
    """
    n = len(values)
    ones = sum(1 for v in values if v == 1)
    if ones in (0, n):
        return [ones / n] * resamples
    cdf = _binomial_cdf(n, ones / n)
    return [min(bisect.bisect_left(cdf, rng.random() * cdf[-1]), n) / n for _ in range(resamples)]


def _generic_means(values: Sequence[float], resamples: int, rng: random.Random) -> list[float]:
    n = len(values)
    data = list(values)
    return [math.fsum(rng.choices(data, k=n)) / n for _ in range(resamples)]


def bootstrap_means(
    values: Sequence[float], *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> list[float]:
    """Means of ``resamples`` bootstrap resamples (with replacement) of ``values``."""
    if not values:
        raise ValueError("bootstrap of no values")
    rng = random.Random(seed)
    if _is_binary(values):
        return _binary_means(values, resamples, rng)
    return _generic_means(values, resamples, rng)


def bootstrap_ci(
    values: Sequence[float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Mean and percentile-bootstrap confidence interval of ``values``."""
    if not values:
        raise ValueError("no values")
    means = sorted(bootstrap_means(values, resamples=resamples, seed=seed))
    tail = (1 - level) / 2
    return Interval(mean(values), quantile(means, tail), quantile(means, 1 - tail), len(values))


def paired_bootstrap_ci(
    current: Sequence[float],
    baseline: Sequence[float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Mean difference (current - baseline) over paired cases, resampling the pairs."""
    if len(current) != len(baseline):
        raise ValueError("paired samples must have the same length")
    diffs = [c - b for c, b in zip(current, baseline, strict=True)]
    return bootstrap_ci(diffs, resamples=resamples, level=level, seed=seed)


def mcnemar(to_pass: int, to_fail: int) -> tuple[float, str]:
    """Two-sided p-value of McNemar's test from the discordant pair counts.

    Exact binomial test for fewer than 25 discordant pairs; otherwise the
    chi-square statistic with continuity correction. Returns (p, method).
    """
    n = to_pass + to_fail
    if n == 0:
        return 1.0, "mcnemar-exact"
    if n < EXACT_MCNEMAR_BELOW:
        tail = sum(math.comb(n, i) for i in range(min(to_pass, to_fail) + 1))
        return float(min(Fraction(1), Fraction(2 * tail, 2**n))), "mcnemar-exact"
    stat = max(abs(to_pass - to_fail) - 1, 0) ** 2 / n
    return math.erfc(math.sqrt(stat / 2)), "mcnemar-chi2"


def sign_flip_test(
    diffs: Sequence[float], *, resamples: int = 10_000, seed: int = 0
) -> tuple[float, str]:
    """Two-sided paired permutation test: is the mean difference zero?

    Under the null each difference is equally likely to have either sign.
    Exact enumeration for up to 12 non-zero differences, Monte Carlo above
    (with the +1 correction so the p-value is never exactly zero).
    """
    nonzero = [d for d in diffs if d != 0]
    if not nonzero:
        return 1.0, "sign-flip-exact"
    observed = abs(math.fsum(nonzero)) * (1 - 1e-9)
    n = len(nonzero)
    if n <= EXACT_SIGN_FLIP_UP_TO:
        extreme = sum(1 for bits in range(2**n) if abs(_signed_sum(nonzero, bits)) >= observed)
        return extreme / 2**n, "sign-flip-exact"
    rng = random.Random(seed)
    extreme = sum(
        1 for _ in range(resamples) if abs(_signed_sum(nonzero, rng.getrandbits(n))) >= observed
    )
    return (extreme + 1) / (resamples + 1), "sign-flip-monte-carlo"


def _signed_sum(values: Sequence[float], bits: int) -> float:
    return math.fsum(-v if (bits >> i) & 1 else v for i, v in enumerate(values))


def confusion_matrix(
    rows: Sequence[Hashable], cols: Sequence[Hashable], labels: Sequence[Hashable]
) -> list[list[int]]:
    """Counts[i][j] of items labelled ``labels[i]`` by the first rater and ``labels[j]``
    by the second."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for a, b in zip(rows, cols, strict=True):
        matrix[index[a]][index[b]] += 1
    return matrix


def cohen_kappa(matrix: Sequence[Sequence[int]]) -> float | None:
    """Cohen's kappa from a confusion matrix; ``None`` when undefined.

    Undefined when chance agreement is already perfect (both raters used one
    and the same label for everything): kappa would be 0/0.
    """
    total = sum(sum(row) for row in matrix)
    if total == 0:
        return None
    size = len(matrix)
    observed = Fraction(sum(matrix[i][i] for i in range(size)), total)
    row_totals = [sum(row) for row in matrix]
    col_totals = [sum(matrix[i][j] for i in range(size)) for j in range(size)]
    expected = Fraction(sum(r * c for r, c in zip(row_totals, col_totals, strict=True)), total**2)
    if expected == 1:
        return None
    return float((observed - expected) / (1 - expected))
