"""Rollout guards by simulation (no network): false rollbacks and power; prints JSON.

Every simulated rollout splits traffic 50/50 (``--share``) and evaluates its
guards after *every* request, exactly as ``pilothouse.rollout.guards`` does
(same functions, vectorised over rollouts), with the default guard set
(error_rate max_increase 0.01, latency_p95_s max_increase_ratio 0.20; alpha
0.05 split between them) and ``min_samples`` per arm.

- A/A: both arms identical (1 % errors, lognormal latency). The false rollback
  rate over ``--runs`` rollouts of ``--horizon`` requests, with a 95 % interval.
  Side by side, the same data through a naive threshold check (roll back when
  the observed error rate is 0.01 above the baseline's, checked after every
  request, as threshold-based canary tools do) and a fixed-horizon z-test
  peeked at after every request.
- Power: errors 1 % → 3 %, and latency x 1.3 (p95 + 30 %): median requests
  (both arms) until the guard fires, against the sample size a fixed-horizon
  one-sided z-test needs for 80 % power at the same alpha, and the naive check.

Run: PYTHONPATH=src nice -n 10 python benchmarks/rollouts.py [--runs 1000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Any

import numpy as np

from pilothouse.rollout import arms
from pilothouse.rollout.sequential import proportion_cs

Z = NormalDist().inv_cdf


def wilson(k: int, n: int, z: float = 1.96) -> list[float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def csum(flags: np.ndarray) -> np.ndarray:
    """Running counts along each row (int32 keeps 1,000 x 30,000 arrays small)."""
    return np.cumsum(flags, axis=1, dtype=np.int32)


def first_true(flags: np.ndarray) -> np.ndarray:
    """Index of the first True per row (-1 when none)."""
    hit = flags.any(axis=1)
    return np.where(hit, flags.argmax(axis=1), -1)


def error_guard(
    cand: np.ndarray, err: np.ndarray, *, alpha: float, margin: float, min_samples: int, chunk: int
) -> np.ndarray:
    """First request index at which the sequential error-rate guard fires (-1: never)."""
    n_c = csum(cand)
    n_b = csum(~cand)
    k_c = csum(err & cand)
    k_b = csum(err & ~cand)
    runs, horizon = cand.shape
    fired = np.full(runs, -1)
    for start in range(0, horizon, chunk):
        sl = slice(start, min(start + chunk, horizon))
        ready = (n_c[:, sl] >= min_samples) & (n_b[:, sl] >= min_samples)
        lo_c, _ = proportion_cs(k_c[:, sl].ravel(), n_c[:, sl].ravel(), alpha / 2)
        _, hi_b = proportion_cs(k_b[:, sl].ravel(), n_b[:, sl].ravel(), alpha / 2)
        breach = ready & ((lo_c - hi_b).reshape(ready.shape) > margin)
        at = first_true(breach)
        new = (fired < 0) & (at >= 0)
        fired[new] = at[new] + start
    return fired


def latency_guard(
    cand: np.ndarray, lat: np.ndarray, *, alpha: float, ratio: float, min_samples: int, chunk: int
) -> np.ndarray:
    """The latency_p95_s guard: tau frozen at arming, then exceedance shares compared."""
    runs, horizon = cand.shape
    buckets = np.minimum(
        (np.log(np.maximum(lat, arms.BASE_S) / arms.BASE_S) / math.log(arms.GROWTH)).astype(int),
        arms.BUCKETS - 1,
    )
    n_b_all = csum(~cand)
    arm_at = first_true(n_b_all >= min_samples)  # the request at which the guard arms
    base_idx = np.zeros(runs, dtype=int)
    cand_idx = np.zeros(runs, dtype=int)
    for r in range(runs):
        seen = buckets[r, : arm_at[r] + 1][~cand[r, : arm_at[r] + 1]]
        counts = np.bincount(seen, minlength=arms.BUCKETS).astype(float).tolist()
        at = arms.quantile_bucket(counts, 0.95) or 0
        base_idx[r] = at + 1
        cand_idx[r] = arms.first_bucket_at_or_above(arms.edge(at + 1) * (1 + ratio))
    after = np.arange(horizon)[None, :] > arm_at[:, None]
    slow_b = (buckets >= base_idx[:, None]) & ~cand & after
    slow_c = (buckets >= cand_idx[:, None]) & cand & after
    n_b = csum(~cand & after)
    n_c = csum(cand & after)
    k_b, k_c = csum(slow_b), csum(slow_c)
    fired = np.full(runs, -1)
    for start in range(0, horizon, chunk):
        sl = slice(start, min(start + chunk, horizon))
        ready = (n_c[:, sl] >= min_samples) & (n_b[:, sl] >= min_samples)
        lo_c, _ = proportion_cs(k_c[:, sl].ravel(), n_c[:, sl].ravel(), alpha / 2)
        _, hi_b = proportion_cs(k_b[:, sl].ravel(), n_b[:, sl].ravel(), alpha / 2)
        breach = ready & ((lo_c - hi_b).reshape(ready.shape) > 0.0)
        at = first_true(breach)
        new = (fired < 0) & (at >= 0)
        fired[new] = at[new] + start
    return fired


def naive_errors(
    cand: np.ndarray, err: np.ndarray, *, margin: float, min_samples: int
) -> np.ndarray:
    n_c, n_b = csum(cand), csum(~cand)
    k_c, k_b = csum(err & cand), csum(err & ~cand)
    ready = (n_c >= min_samples) & (n_b >= min_samples)
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = k_c / np.maximum(n_c, 1) - k_b / np.maximum(n_b, 1)
    return first_true(ready & (gap > margin))


def peeked_z(cand: np.ndarray, err: np.ndarray, *, alpha: float, min_samples: int) -> np.ndarray:
    """A one-sided two-proportion z-test (H0: equal rates) looked at after every request."""
    n_c, n_b = csum(cand), csum(~cand)
    k_c, k_b = csum(err & cand), csum(err & ~cand)
    n1, n0 = np.maximum(n_c, 1), np.maximum(n_b, 1)
    pooled = (k_c + k_b) / (n1 + n0)
    se = np.sqrt(np.maximum(pooled * (1 - pooled), 1e-12) * (1 / n1 + 1 / n0))
    z = (k_c / n1 - k_b / n0) / se
    ready = (n_c >= min_samples) & (n_b >= min_samples) & (k_c + k_b > 0)
    return first_true(ready & (z > Z(1 - alpha)))


def fixed_n(p0: float, p1: float, *, alpha: float, margin: float, share: float) -> int:
    """Total requests a fixed-horizon one-sided z-test of (p1 - p0 > margin) needs, power 80 %."""
    var = p0 * (1 - p0) / (1 - share) + p1 * (1 - p1) / share
    return math.ceil((Z(1 - alpha) + Z(0.8)) ** 2 * var / (p1 - p0 - margin) ** 2)


def summary(fired: np.ndarray, horizon: int) -> dict[str, Any]:
    """How many fired, and when: the median over *all* runs (undetected = beyond the horizon)."""
    hits = fired[fired >= 0] + 1
    times = np.where(fired >= 0, fired + 1, np.inf)
    median_all = float(np.median(times))
    return {
        "median_requests_all_runs": int(median_all) if math.isfinite(median_all) else None,
        "fired": int((fired >= 0).sum()),
        "of": int(fired.size),
        "rate": round(float((fired >= 0).mean()), 4),
        "rate_ci95": wilson(int((fired >= 0).sum()), int(fired.size)),
        "median_requests_detected": int(np.median(hits)) if hits.size else None,
        "p90_requests": int(np.quantile(hits, 0.9)) if hits.size else None,
        "horizon": horizon,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--horizon", type=int, default=4000, help="requests per A/A rollout")
    parser.add_argument("--power-horizon", type=int, default=30000)
    parser.add_argument("--power-runs", type=int, default=200)
    parser.add_argument("--share", type=float, default=0.5)
    parser.add_argument("--min-samples", type=int, default=200)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--chunk", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    alpha_g = args.alpha / 2  # two guards share alpha (Bonferroni)
    started = time.perf_counter()
    common = {"min_samples": args.min_samples, "chunk": args.chunk}

    def traffic(runs: int, horizon: int, p_c: float, slow: float) -> tuple[np.ndarray, ...]:
        cand = rng.random((runs, horizon)) < args.share
        p = np.where(cand, p_c, 0.01)
        err = rng.random((runs, horizon)) < p
        lat = rng.lognormal(math.log(0.5), 0.5, (runs, horizon)) * np.where(cand, slow, 1.0)
        return cand, err, lat

    cand, err, lat = traffic(args.runs, args.horizon, 0.01, 1.0)
    e = error_guard(cand, err, alpha=alpha_g, margin=0.01, **common)
    lt = latency_guard(cand, lat, alpha=alpha_g, ratio=0.2, **common)
    any_guard = np.where((e >= 0) | (lt >= 0), np.maximum(e, lt), -1)
    a_a = {
        "sequential_guards": summary(any_guard, args.horizon),
        "error_rate_guard": summary(e, args.horizon),
        "latency_p95_guard": summary(lt, args.horizon),
        "naive_threshold_error_rate": summary(
            naive_errors(cand, err, margin=0.01, min_samples=args.min_samples), args.horizon
        ),
        "fixed_horizon_z_peeked_every_request": summary(
            peeked_z(cand, err, alpha=alpha_g, min_samples=args.min_samples), args.horizon
        ),
    }
    del cand, err, lat

    cand, err, lat = traffic(args.power_runs, args.power_horizon, 0.03, 1.0)
    power_err = {
        "sequential": summary(
            error_guard(cand, err, alpha=alpha_g, margin=0.01, **common), args.power_horizon
        ),
        "sequential_max_increase_0": summary(
            error_guard(cand, err, alpha=alpha_g, margin=0.0, **common), args.power_horizon
        ),
        "naive_threshold": summary(
            naive_errors(cand, err, margin=0.01, min_samples=args.min_samples), args.power_horizon
        ),
        "fixed_horizon_requests_for_80pct_power_max_increase_0": fixed_n(
            0.01, 0.03, alpha=alpha_g, margin=0.0, share=args.share
        ),
        "fixed_horizon_requests_for_80pct_power": fixed_n(
            0.01, 0.03, alpha=alpha_g, margin=0.01, share=args.share
        ),
    }
    del cand, err, lat
    cand, _err, lat = traffic(args.power_runs, args.power_horizon, 0.01, 1.3)
    # p95 + 30 %: candidate share above 1.2 tau is P(Z > z95 + ln(1.2/1.3)/sigma), sigma 0.5.
    p_line = 1 - NormalDist().cdf(Z(0.95) + math.log(1.2 / 1.3) / 0.5)
    power_lat = {
        "sequential": summary(
            latency_guard(cand, lat, alpha=alpha_g, ratio=0.2, **common), args.power_horizon
        ),
        "fixed_horizon_requests_for_80pct_power": fixed_n(
            0.05, p_line, alpha=alpha_g, margin=0.0, share=args.share
        )
        + args.min_samples * 2,
        "candidate_share_above_line": round(p_line, 4),
    }
    out = {
        "benchmark": "rollouts",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "load_average": [round(x, 1) for x in os.getloadavg()],
        },
        "params": vars(args) | {"alpha_per_guard": alpha_g},
        "a_a": a_a,
        "power_error_rate_1_to_3_pct": power_err,
        "power_latency_p95_plus_30_pct": power_lat,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
