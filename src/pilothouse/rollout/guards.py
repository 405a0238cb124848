"""Guard verdicts from the shared arm counters: waiting, pass or breach, with the statistic.

The set of guards shares ``alpha`` by Bonferroni (each guard gets
``alpha / G``), and within a guard each arm's confidence sequence gets half of
that (see :mod:`pilothouse.rollout.sequential`). A guard may fire only when
both arms have ``min_samples``.

``latency_p95_s`` is a test on proportions, said plainly: when the baseline
first has ``min_samples`` successful requests, its p95 bucket edge ``tau`` is
frozen (a mark, first replica wins) with a snapshot of both arms' counts. From
then on the guard compares the candidate's share of requests slower than
``(1 + max_increase_ratio) * tau`` (or ``tau + max_increase``) with the
baseline's share slower than ``tau`` (about 5 %). A candidate whose p95 is
more than the tolerated factor above the baseline's has more than 5 % of its
requests above that line, so this detects the p95 shift; for a candidate that
is the baseline slowed by at most the factor the error bound is exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pilothouse.rollout import arms, sequential
from pilothouse.rollout.config import GuardConfig
from pilothouse.rollout.model import Rollout
from pilothouse.rollout.sequential import Comparison

Totals = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True, slots=True)
class Verdict:
    metric: str
    state: str  # waiting | pass | breach
    alpha: float
    samples: dict[str, int]
    comparison: Comparison | None = None
    detail: dict[str, Any] | None = None

    @property
    def breached(self) -> bool:
        return self.state == "breach"

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "metric": self.metric,
            "state": self.state,
            "alpha": self.alpha,
            "samples": self.samples,
        }
        if self.comparison is not None:
            out.update(self.comparison.public())
        if self.detail:
            out.update(self.detail)
        return out


def guard_alpha(rollout: Rollout) -> float:
    return rollout.options.alpha / max(len(rollout.options.guards), 1)


def latency_mark(guard: GuardConfig, totals: Totals, min_samples: int) -> dict[str, Any] | None:
    """The frozen threshold and snapshot for a latency guard, once the baseline can give one."""
    base = totals.get("baseline", {})
    if base.get("ok", 0.0) < min_samples:
        return None
    at = arms.quantile_bucket(arms.histogram(base), 0.95)
    if at is None:
        return None
    tau = arms.edge(at + 1)
    if guard.max_increase_ratio is not None:
        line = tau * (1.0 + guard.max_increase_ratio)
    else:
        line = tau + float(guard.max_increase or 0.0)
    base_index, cand_index = at + 1, arms.first_bucket_at_or_above(line)
    cand = totals.get("candidate", {})
    return {
        "tau_s": tau,
        "line_s": arms.edge(cand_index),
        "base_index": base_index,
        "cand_index": cand_index,
        "snapshot": {
            "baseline": [base.get("ok", 0.0), arms.exceeding(base, base_index)],
            "candidate": [cand.get("ok", 0.0), arms.exceeding(cand, cand_index)],
        },
    }


def _waiting(metric: str, alpha: float, samples: dict[str, int], **detail: Any) -> Verdict:
    return Verdict(metric, "waiting", alpha, samples, detail=detail or None)


def _judge(
    metric: str, alpha: float, samples: dict[str, int], cmp: Comparison, **d: Any
) -> Verdict:
    return Verdict(metric, "breach" if cmp.breached else "pass", alpha, samples, cmp, d or None)


def evaluate_guard(
    rollout: Rollout, guard: GuardConfig, totals: Totals, marks: Mapping[str, Any]
) -> Verdict:
    alpha = guard_alpha(rollout)
    half = alpha / 2
    need = rollout.options.min_samples
    base, cand = totals.get("baseline", {}), totals.get("candidate", {})
    metric = guard.metric
    if metric == "error_rate":
        n_b, n_c = base.get("n", 0.0), cand.get("n", 0.0)
        samples = {"baseline": int(n_b), "candidate": int(n_c)}
        if min(n_b, n_c) < need:
            return _waiting(metric, alpha, samples)
        cmp = sequential.increase(
            sequential.proportion_cs(cand.get("err", 0.0), n_c, half),
            sequential.proportion_cs(base.get("err", 0.0), n_b, half),
            absolute=guard.max_increase,
            ratio=None,
        )
        return _judge(metric, alpha, samples, cmp)
    if metric == "latency_p95_s":
        mark = marks.get(f"guard:{metric}")
        if mark is None:
            samples = {"baseline": int(base.get("ok", 0.0)), "candidate": 0}
            return _waiting(metric, alpha, samples, armed=False)
        snap = mark["snapshot"]
        n_b = base.get("ok", 0.0) - snap["baseline"][0]
        n_c = cand.get("ok", 0.0) - snap["candidate"][0]
        k_b = arms.exceeding(base, mark["base_index"]) - snap["baseline"][1]
        k_c = arms.exceeding(cand, mark["cand_index"]) - snap["candidate"][1]
        samples = {"baseline": int(n_b), "candidate": int(n_c)}
        detail = {
            "armed": True,
            "tau_s": round(mark["tau_s"], 6),
            "line_s": round(mark["line_s"], 6),
        }
        if min(n_b, n_c) < need:
            return _waiting(metric, alpha, samples, **detail)
        cmp = sequential.increase(
            sequential.proportion_cs(k_c, n_c, half),
            sequential.proportion_cs(k_b, n_b, half),
            absolute=0.0,
            ratio=None,
        )
        return _judge(metric, alpha, samples, cmp, **detail)
    if metric == "cost_per_request_usd":
        n_b, n_c = base.get("n", 0.0), cand.get("n", 0.0)
        samples = {"baseline": int(n_b), "candidate": int(n_c)}
        if min(n_b, n_c) < need:
            return _waiting(metric, alpha, samples)
        cmp = sequential.increase(
            _mean_cs(cand, "cost", half, need),
            _mean_cs(base, "cost", half, need),
            absolute=guard.max_increase,
            ratio=guard.max_increase_ratio,
        )
        return _judge(metric, alpha, samples, cmp)
    scorer = metric.removeprefix("online_eval.")
    field = f"ev.{scorer}"
    n_b, n_c = base.get(field + ".n", 0.0), cand.get(field + ".n", 0.0)
    samples = {"baseline": int(n_b), "candidate": int(n_c)}
    if min(n_b, n_c) < need:
        return _waiting(metric, alpha, samples)
    cmp = sequential.drop(
        _mean_cs(cand, field, half, need),
        _mean_cs(base, field, half, need),
        absolute=float(guard.max_drop or 0.0),
    )
    return _judge(metric, alpha, samples, cmp)


def _mean_cs(arm: Mapping[str, float], field: str, alpha: float, n_opt: int) -> tuple[float, float]:
    n_key = "n" if field == "cost" else field + ".n"
    lo, hi = sequential.mean_cs(
        arm.get(n_key, 0.0),
        arm.get(field + "_sum" if field == "cost" else field + ".sum", 0.0),
        arm.get(field + "_sq" if field == "cost" else field + ".sq", 0.0),
        alpha,
        n_opt=n_opt,
    )
    return float(lo), float(hi)


def evaluate(rollout: Rollout, totals: Totals, marks: Mapping[str, Any]) -> list[Verdict]:
    return [evaluate_guard(rollout, g, totals, marks) for g in rollout.options.guards]


def marks_needed(rollout: Rollout, totals: Totals, marks: Mapping[str, Any]) -> dict[str, Any]:
    """Marks a replica should try to set now (first writer wins)."""
    out = {}
    for guard in rollout.options.guards:
        name = f"guard:{guard.metric}"
        if guard.metric == "latency_p95_s" and name not in marks:
            mark = latency_mark(guard, totals, rollout.options.min_samples)
            if mark is not None:
                out[name] = mark
    return out


def recommendation(
    rollout: Rollout, totals: Totals, outcomes: Mapping[str, Mapping[str, tuple[float, float]]]
) -> dict[str, Any]:
    """A/B: better, worse, or no detectable difference yet (with the sample size to tell).

    ``outcomes`` maps metric → arm → (successes or sum, trials) of a higher-is-better
    proportion (feedback success, online eval pass rate as a mean in [0, 1]).
    """
    alpha = rollout.options.alpha / max(len(outcomes), 1)
    results: dict[str, Any] = {}
    overall = "no detectable difference yet"
    worse = better = False
    for metric, by_arm in outcomes.items():
        (k_c, n_c), (k_b, n_b) = by_arm.get("candidate", (0, 0)), by_arm.get("baseline", (0, 0))
        if min(n_c, n_b) < 1:
            results[metric] = {"verdict": "no data yet"}
            continue
        lo_c, hi_c = sequential.proportion_cs(min(k_c, n_c), n_c, alpha / 2)
        lo_b, hi_b = sequential.proportion_cs(min(k_b, n_b), n_b, alpha / 2)
        diff = [lo_c - hi_b, hi_c - lo_b]
        if diff[0] > 0:
            verdict, better = "candidate better", True
        elif diff[1] < 0:
            verdict, worse = "candidate worse", True
        else:
            verdict = "no detectable difference yet"
        entry: dict[str, Any] = {
            "verdict": verdict,
            "difference": round(k_c / n_c - k_b / n_b, 6),
            "difference_ci": [round(diff[0], 6), round(diff[1], 6)],
        }
        if verdict == "no detectable difference yet":
            observed = abs(k_c / n_c - k_b / n_b)
            entry["samples_needed"] = sequential.samples_needed(
                k_b / n_b, max(observed, 0.01), alpha, max(min(rollout.share, 0.99), 0.01)
            )
        results[metric] = entry
    if worse:
        overall = "candidate worse"
    elif better:
        overall = "candidate better"
    return {"verdict": overall, "alpha": rollout.options.alpha, "metrics": results}
