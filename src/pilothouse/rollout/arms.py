"""What one request adds to its arm, and each arm's figures with confidence intervals.

Counters are plain sums (so replicas can add them up): requests, errors
(5xx: the upstream or gateway failed), a log-spaced latency histogram of
successful requests (5 % wide buckets from 1 ms), TTFT and cost sums, and
per-scorer online eval sums. Quantiles come from the histogram, so a p95 is
exact to within one bucket (5 %).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pilothouse.rollout import sequential

BASE_S = 0.001
GROWTH = 1.05
BUCKETS = 300  # 1 ms · 1.05^300 ≈ 2.3e3 s
_LOG_GROWTH = math.log(GROWTH)


def bucket(latency_s: float) -> int:
    if latency_s <= BASE_S:
        return 0
    return min(int(math.log(latency_s / BASE_S) / _LOG_GROWTH), BUCKETS - 1)


def edge(index: int) -> float:
    """Lower edge (seconds) of bucket ``index``."""
    return BASE_S * GROWTH**index


def first_bucket_at_or_above(seconds: float) -> int:
    """The first bucket whose lower edge is ≥ ``seconds``."""
    if seconds <= BASE_S:
        return 0
    return min(math.ceil(math.log(seconds / BASE_S) / _LOG_GROWTH - 1e-9), BUCKETS)


def request_deltas(
    *,
    status: int,
    latency_s: float,
    ttft_s: float | None,
    cost_usd: float,
) -> dict[str, float]:
    out = {"n": 1.0, "cost_sum": cost_usd, "cost_sq": cost_usd * cost_usd}
    if status >= 500:
        out["err"] = 1.0
    if status == 200:
        out["ok"] = 1.0
        out[f"lat.{bucket(latency_s)}"] = 1.0
        if ttft_s is not None:
            out["ttft_n"] = 1.0
            out["ttft_sum"] = ttft_s
            out["ttft_sq"] = ttft_s * ttft_s
    return out


def score_deltas(scorer: str, value: float) -> dict[str, float]:
    return {f"ev.{scorer}.n": 1.0, f"ev.{scorer}.sum": value, f"ev.{scorer}.sq": value * value}


def histogram(arm: Mapping[str, float]) -> list[float]:
    counts = [0.0] * BUCKETS
    for name, value in arm.items():
        if name.startswith("lat."):
            counts[int(name[4:])] += value
    return counts


def exceeding(arm: Mapping[str, float], index: int) -> float:
    """Successful requests in buckets ``index`` and above (slower than its lower edge)."""
    return sum(v for k, v in arm.items() if k.startswith("lat.") and int(k[4:]) >= index)


def quantile_bucket(counts: list[float], q: float) -> int | None:
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    for i, c in enumerate(counts):
        seen += c
        if seen >= rank and c > 0:
            return i
    return len(counts) - 1


def _quantile(counts: list[float], q: float, alpha: float) -> dict[str, Any]:
    """The q-quantile (bucket upper edge) with an order-statistic interval."""
    n = sum(counts)
    at = quantile_bucket(counts, q)
    if at is None:
        return {"value": None, "ci": [None, None]}
    lo_q, hi_q = sequential.proportion_cs(round(q * n), n, alpha)
    lo = quantile_bucket(counts, max(lo_q, 1e-9))
    hi = quantile_bucket(counts, min(hi_q, 1.0))
    return {
        "value": round(edge(at + 1), 6),
        "ci": [round(edge(lo), 6) if lo is not None else None, round(edge((hi or at) + 1), 6)],
    }


def _rate(k: float, n: float, alpha: float) -> dict[str, Any]:
    if n <= 0:
        return {"value": None, "ci": [None, None]}
    lo, hi = sequential.proportion_cs(k, n, alpha)
    return {"value": round(k / n, 6), "ci": [round(lo, 6), round(hi, 6)]}


def _mean(n: float, total: float, sq: float, alpha: float, n_opt: float) -> dict[str, Any]:
    if n <= 0:
        return {"value": None, "ci": [None, None]}
    lo, hi = sequential.mean_cs(n, total, sq, alpha, n_opt=n_opt)
    return {
        "value": round(total / n, 9),
        "ci": [
            round(lo, 9) if math.isfinite(lo) else None,
            round(hi, 9) if math.isfinite(hi) else None,
        ],
    }


def summary(arm: Mapping[str, float], alpha: float, n_opt: float) -> dict[str, Any]:
    """One arm's figures, each with an anytime-valid interval at ``alpha``."""
    n = arm.get("n", 0.0)
    counts = histogram(arm)
    ttft_n = arm.get("ttft_n", 0.0)
    evals = {}
    for name in sorted(arm):
        if name.startswith("ev.") and name.endswith(".n"):
            scorer = name[3:-2]
            evals[scorer] = {
                "n": int(arm[name]),
                **_mean(
                    arm[name],
                    arm.get(f"ev.{scorer}.sum", 0.0),
                    arm.get(f"ev.{scorer}.sq", 0.0),
                    alpha,
                    n_opt,
                ),
            }
    return {
        "requests": int(n),
        "errors": int(arm.get("err", 0.0)),
        "error_rate": _rate(arm.get("err", 0.0), n, alpha),
        "latency_p50_s": _quantile(counts, 0.50, alpha),
        "latency_p95_s": _quantile(counts, 0.95, alpha),
        "ttft_mean_s": _mean(
            ttft_n, arm.get("ttft_sum", 0.0), arm.get("ttft_sq", 0.0), alpha, n_opt
        ),
        "cost_per_request_usd": _mean(
            n, arm.get("cost_sum", 0.0), arm.get("cost_sq", 0.0), alpha, n_opt
        ),
        "online_eval": evals,
    }
