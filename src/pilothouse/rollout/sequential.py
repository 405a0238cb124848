"""Anytime-valid confidence sequences for rollout guards (pure functions, no I/O).

A guard is checked after every flush, forever; a fixed-sample test checked
that often would raise false alarms far above its nominal level (the peeking
problem). Every interval here is a *confidence sequence*: with probability at
least 1 - alpha it covers the true value at every sample size at once, so it
may be looked at as often as one likes.

* Proportions (error rate, share of slow requests, feedback success):
  the conjugate Beta-binomial mixture (Robbins). For counts ``k`` of ``n`` the
  set ``{p : B(a+k, b+n-k)/B(a,b) / (p^k (1-p)^(n-k)) < 1/alpha}`` is an exact
  confidence sequence: the ratio is a nonnegative martingale under ``p`` and
  Ville's inequality bounds its ever reaching ``1/alpha``. Exact for any
  ``n``, adaptive to small rates, computed from counts alone.
* Means (cost per request, online eval scores): the asymptotic confidence
  sequence of Waudby-Smith et al. (2021, "Time-uniform central limit theory"),
  a normal-mixture boundary with a plug-in variance, from ``n``, sum and sum
  of squares. Its coverage is asymptotic, not exact; scores are bounded in
  [0, 1] and costs are clipped to a cap frozen when the guard arms.

Comparing two arms uses one interval per arm at ``alpha / 2`` (a union bound),
and a set of ``G`` guards gives each ``alpha / G`` (Bonferroni), so the whole
set keeps its ``alpha`` under continuous monitoring. Both splits are
conservative; the price is some power, measured in ``benchmarks/rollouts.py``.

Every function accepts numbers or numpy arrays (the benchmark evaluates
thousands of simulated rollouts at once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
PRIOR = 0.5  # Beta(1/2, 1/2): Jeffreys, weight near small rates where guards live
_ITER = 48  # bisection steps: 2^-48 of [0, 1], far below any rate that matters
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def lgamma(x: Array) -> Array:
    """log Γ(x) for x > 0, vectorised: shift to x + 8, then Stirling's series (error < 1e-12)."""
    x = np.asarray(x, dtype=np.float64)
    shift = np.log(x * (x + 1) * (x + 2) * (x + 3)) + np.log((x + 4) * (x + 5) * (x + 6) * (x + 7))
    z = x + 8.0
    inv = 1.0 / z
    inv2 = inv * inv
    series = inv * (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 / 1680)))
    return np.asarray((z - 0.5) * np.log(z) - z + _HALF_LOG_2PI + series - shift)


def _log_beta(a: Array, b: Array) -> Array:
    return lgamma(a) + lgamma(b) - lgamma(a + b)


def proportion_cs(k: Any, n: Any, alpha: float, prior: float = PRIOR) -> tuple[Any, Any]:
    """(lower, upper) of the Beta-binomial mixture confidence sequence for k of n."""
    k_arr = np.asarray(k, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    scalar = k_arr.ndim == 0
    k_arr, n_arr = np.atleast_1d(k_arr), np.atleast_1d(n_arr)
    log_mix = _log_beta(prior + k_arr, prior + n_arr - k_arr) - _log_beta(
        np.full_like(k_arr, prior), np.full_like(k_arr, prior)
    )
    bound = math.log(1.0 / alpha)
    phat = np.where(n_arr > 0, k_arr / np.maximum(n_arr, 1.0), 0.5)

    def outside(p: Array) -> npt.NDArray[np.bool_]:
        with np.errstate(divide="ignore", invalid="ignore"):
            loglik = np.where(k_arr > 0, k_arr * np.log(p), 0.0) + np.where(
                n_arr - k_arr > 0, (n_arr - k_arr) * np.log1p(-p), 0.0
            )
        return np.asarray(log_mix - loglik >= bound)

    lo_in, lo_out = phat.copy(), np.zeros_like(phat)  # lower end lies in (lo_out, lo_in]
    hi_in, hi_out = phat.copy(), np.ones_like(phat)
    lower_zero = ~outside(np.zeros_like(phat))
    upper_one = ~outside(np.ones_like(phat))
    for _ in range(_ITER):
        mid = (lo_in + lo_out) / 2
        out = outside(mid)
        lo_out = np.where(out, mid, lo_out)
        lo_in = np.where(out, lo_in, mid)
        mid = (hi_in + hi_out) / 2
        out = outside(mid)
        hi_out = np.where(out, mid, hi_out)
        hi_in = np.where(out, hi_in, mid)
    lower = np.where(lower_zero, 0.0, lo_in)
    upper = np.where(upper_one, 1.0, hi_in)
    lower = np.where(n_arr > 0, lower, 0.0)
    upper = np.where(n_arr > 0, upper, 1.0)
    if scalar:
        return float(lower[0]), float(upper[0])
    return lower, upper


def rho_for(alpha: float, n_opt: float) -> float:
    """Mixture width that makes the boundary tightest around ``n_opt`` samples."""
    two_log = -2.0 * math.log(alpha)
    return math.sqrt((two_log + math.log(two_log + 1.0)) / max(n_opt, 1.0))


def mean_cs(
    n: Any, total: Any, total_sq: Any, alpha: float, *, n_opt: float = 200.0
) -> tuple[Any, Any]:
    """(lower, upper) of the asymptotic normal-mixture confidence sequence for a mean."""
    n_arr = np.asarray(n, dtype=np.float64)
    safe_n = np.maximum(n_arr, 1.0)
    mean = np.asarray(total, dtype=np.float64) / safe_n
    var = np.maximum(np.asarray(total_sq, dtype=np.float64) / safe_n - mean**2, 0.0)
    rho2 = rho_for(alpha, n_opt) ** 2
    width = np.sqrt(var) * np.sqrt(
        2.0
        * (safe_n * rho2 + 1.0)
        / (safe_n**2 * rho2)
        * np.log(np.sqrt(safe_n * rho2 + 1.0) / alpha)
    )
    lower = np.where(n_arr > 1, mean - width, -np.inf)
    upper = np.where(n_arr > 1, mean + width, np.inf)
    if lower.ndim == 0:
        return float(lower), float(upper)
    return lower, upper


@dataclass(frozen=True, slots=True)
class Comparison:
    """Candidate vs baseline under one guard: its statistic against its boundary."""

    breached: bool
    statistic: float  # the conservative end of the change (lower bound of the increase)
    boundary: float  # the tolerated change; breached when statistic > boundary
    candidate: tuple[float, float]
    baseline: tuple[float, float]

    def public(self) -> dict[str, Any]:
        return {
            "breached": self.breached,
            "statistic": _finite(self.statistic),
            "boundary": self.boundary,
            "candidate_interval": [_finite(v) for v in self.candidate],
            "baseline_interval": [_finite(v) for v in self.baseline],
        }


def _finite(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def increase(
    cand: tuple[float, float],
    base: tuple[float, float],
    *,
    absolute: float | None,
    ratio: float | None,
) -> Comparison:
    """Is the candidate worse by more than ``absolute`` (c - b) or ``ratio`` (c / b - 1)?

    The statistic is the smallest change consistent with both intervals
    (candidate's lower end against the baseline's upper end).
    """
    if absolute is not None:
        stat = cand[0] - base[1]
        return Comparison(stat > absolute, stat, absolute, cand, base)
    assert ratio is not None
    stat = (math.inf if cand[0] > 0 else 0.0) if base[1] <= 0 else cand[0] / base[1] - 1.0
    return Comparison(stat > ratio, stat, ratio, cand, base)


def drop(cand: tuple[float, float], base: tuple[float, float], *, absolute: float) -> Comparison:
    """Is the candidate's score lower by more than ``absolute``? (b_low - c_high)."""
    stat = base[0] - cand[1]
    return Comparison(stat > absolute, stat, absolute, cand, base)


def srm_p_value(observed: tuple[int, int], share: float) -> float | None:
    """Sample-ratio mismatch: chi-square (1 dof) p-value of candidate/baseline counts vs share.

    A tiny p-value means assignment is not doing what the target says
    (a bug, a bot on one arm, a filter dropping one arm's requests).
    """
    cand, base = observed
    total = cand + base
    if total == 0 or not 0.0 < share < 1.0:
        return None
    exp_c, exp_b = total * share, total * (1 - share)
    chi2 = (cand - exp_c) ** 2 / exp_c + (base - exp_b) ** 2 / exp_b
    return math.erfc(math.sqrt(chi2 / 2.0))


def samples_needed(p_base: float, delta: float, alpha: float, share: float) -> int | None:
    """Rough total requests until a true difference ``delta`` of a proportion is resolved.

    Uses the asymptotic boundary's growth (about 2 log(1/alpha) + log n per unit
    variance), solved by doubling; a planning figure, not a guarantee.
    """
    if delta <= 0 or not 0 < share < 1:
        return None
    var = p_base * (1 - p_base) + (p_base + delta) * (1 - p_base - delta)
    var = max(var, 1e-6)
    n = 16.0
    while n < 1e9:
        n_c, n_b = n * share, n * (1 - share)
        half = math.sqrt(2 * math.log(math.sqrt(n) / (alpha / 2)) * (var / 2) * (1 / n_c + 1 / n_b))
        if half < delta:
            return int(n)
        n *= 1.25
    return None
