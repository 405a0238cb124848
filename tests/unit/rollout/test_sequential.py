"""Confidence sequences and guards: coverage, A/A false alarms under continuous monitoring."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from pilothouse.rollout import arms, guards, sequential
from pilothouse.rollout.config import GuardConfig, RolloutDefaults
from pilothouse.rollout.model import Rollout


def rollout(**options: object) -> Rollout:
    now = datetime.now(UTC)
    return Rollout(
        id="ro_test",
        kind="alias",
        target="chat",
        mode="canary",
        percent=50.0,
        steps=None,
        step_after=None,
        step_index=0,
        sticky="none",
        bill_shadow=False,
        options=RolloutDefaults(**options),  # type: ignore[arg-type]
        state="running",
        created_at=now,
        created_by="t",
        updated_at=now,
        alias="chat",
        candidate_alias="chat-next",
    )


def test_proportion_cs_contains_the_estimate_and_narrows() -> None:
    lo, hi = sequential.proportion_cs(10, 1000, 0.05)
    assert lo < 0.01 < hi
    lo2, hi2 = sequential.proportion_cs(100, 10_000, 0.05)
    assert hi2 - lo2 < hi - lo
    assert sequential.proportion_cs(0, 0, 0.05) == (0.0, 1.0)
    lo0, hi0 = sequential.proportion_cs(0, 500, 0.05)
    assert lo0 == 0.0 and 0 < hi0 < 0.03


def test_proportion_cs_is_wider_than_a_fixed_sample_interval() -> None:
    """The price of looking at every sample: wider than the 95 % Wald interval."""
    lo, hi = sequential.proportion_cs(50, 1000, 0.05)
    wald = 1.96 * math.sqrt(0.05 * 0.95 / 1000)
    assert hi - lo > 2 * wald


def test_proportion_cs_covers_the_truth_at_every_time() -> None:
    rng = np.random.default_rng(7)
    p, runs, horizon = 0.05, 400, 600
    draws = rng.random((runs, horizon)) < p
    k = np.cumsum(draws, axis=1)
    ever_missed = np.zeros(runs, dtype=bool)
    for t in range(horizon):
        lo, hi = sequential.proportion_cs(k[:, t], np.full(runs, t + 1), 0.05)
        ever_missed |= (lo > p) | (hi < p)
    assert ever_missed.mean() <= 0.05


def test_mean_cs_covers_a_bounded_mean() -> None:
    rng = np.random.default_rng(5)
    x = rng.random((300, 800)) ** 2  # mean 1/3
    n = np.arange(1, 801)
    s, sq = np.cumsum(x, axis=1), np.cumsum(x * x, axis=1)
    missed = np.zeros(300, dtype=bool)
    for t in range(30, 800):
        lo, hi = sequential.mean_cs(np.full(300, n[t]), s[:, t], sq[:, t], 0.05, n_opt=200)
        missed |= (lo > 1 / 3) | (hi < 1 / 3)
    assert missed.mean() <= 0.05


def test_srm_p_value() -> None:
    assert sequential.srm_p_value((100, 900), 0.1) == pytest.approx(1.0)
    p_value = sequential.srm_p_value((150, 850), 0.1)
    assert p_value is not None and p_value < 1e-4


def test_guard_config_is_strict() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        GuardConfig(metric="error_rate")
    with pytest.raises(ValueError, match="max_drop"):
        GuardConfig(metric="online_eval.helpful", max_increase=0.1)
    with pytest.raises(ValueError, match="not one of"):
        GuardConfig(metric="errors", max_increase=0.1)


def _counts(errors: int, n: int) -> dict[str, float]:
    return {"n": float(n), "err": float(errors)}


def test_error_rate_guard_waits_for_min_samples_then_fires() -> None:
    ro = rollout(guards=[GuardConfig(metric="error_rate", max_increase=0.01)], min_samples=50)
    early = guards.evaluate(ro, {"baseline": _counts(0, 49), "candidate": _counts(40, 49)}, {})
    assert early[0].state == "waiting"
    late = guards.evaluate(ro, {"baseline": _counts(0, 50), "candidate": _counts(40, 50)}, {})
    assert late[0].state == "breach" and late[0].comparison is not None
    assert late[0].comparison.statistic > 0.01
    same = guards.evaluate(ro, {"baseline": _counts(5, 500), "candidate": _counts(6, 500)}, {})
    assert same[0].state == "pass"


def _latency_arm(latencies: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {"n": float(len(latencies)), "ok": float(len(latencies))}
    for lat in latencies:
        name = f"lat.{arms.bucket(float(lat))}"
        out[name] = out.get(name, 0.0) + 1
    return out


def test_latency_guard_arms_on_the_baseline_p95_then_detects_a_slower_candidate() -> None:
    guard = GuardConfig(metric="latency_p95_s", max_increase_ratio=0.2)
    ro = rollout(guards=[guard], min_samples=100)
    rng = np.random.default_rng(3)
    first = rng.lognormal(math.log(0.2), 0.3, 200)
    totals = {"baseline": _latency_arm(first), "candidate": {}}
    assert guards.evaluate(ro, totals, {})[0].state == "waiting"
    mark = guards.marks_needed(ro, totals, {})["guard:latency_p95_s"]
    assert mark["line_s"] >= 1.2 * mark["tau_s"]
    marks = {"guard:latency_p95_s": mark}
    more = rng.lognormal(math.log(0.2), 0.3, 3000)
    base = _latency_arm(np.concatenate([first, more]))
    slow = _latency_arm(rng.lognormal(math.log(0.2 * 2.0), 0.3, 3000))
    verdict = guards.evaluate(ro, {"baseline": base, "candidate": slow}, marks)[0]
    assert verdict.state == "breach"
    same = _latency_arm(rng.lognormal(math.log(0.2), 0.3, 3000))
    assert guards.evaluate(ro, {"baseline": base, "candidate": same}, marks)[0].state == "pass"


def test_online_eval_guard_fires_on_a_drop() -> None:
    ro = rollout(guards=[GuardConfig(metric="online_eval.helpful", max_drop=0.05)], min_samples=100)
    good = arms.score_deltas("helpful", 1.0)
    base = {k: v * 400 for k, v in good.items()}
    base["ev.helpful.sum"] = 360.0  # 90 % helpful
    base["ev.helpful.sq"] = 360.0
    cand = {"ev.helpful.n": 400.0, "ev.helpful.sum": 200.0, "ev.helpful.sq": 200.0}
    assert guards.evaluate(ro, {"baseline": base, "candidate": cand}, {})[0].state == "breach"
    assert guards.evaluate(ro, {"baseline": base, "candidate": base}, {})[0].state == "pass"


def test_alpha_is_split_across_guards() -> None:
    ro = rollout(
        guards=[
            GuardConfig(metric="error_rate", max_increase=0.01),
            GuardConfig(metric="cost_per_request_usd", max_increase_ratio=0.25),
        ],
        alpha=0.1,
    )
    assert guards.guard_alpha(ro) == pytest.approx(0.05)


def test_a_a_false_rollback_rate_under_monitoring_after_every_request_is_within_alpha() -> None:
    """300 A/A rollouts (2 % errors both arms), error-rate guard checked after every request."""
    alpha, runs, horizon, min_samples = 0.05, 300, 1500, 50
    rng = np.random.default_rng(11)
    arm_is_cand = rng.random((runs, horizon)) < 0.5
    err = rng.random((runs, horizon)) < 0.02
    n_c = np.cumsum(arm_is_cand, axis=1)
    n_b = np.cumsum(~arm_is_cand, axis=1)
    k_c = np.cumsum(err & arm_is_cand, axis=1)
    k_b = np.cumsum(err & ~arm_is_cand, axis=1)
    fired = np.zeros(runs, dtype=bool)
    for t in range(horizon):
        ready = (n_c[:, t] >= min_samples) & (n_b[:, t] >= min_samples)
        if not ready.any():
            continue
        lo_c, _ = sequential.proportion_cs(k_c[:, t], n_c[:, t], alpha / 2)
        _, hi_b = sequential.proportion_cs(k_b[:, t], n_b[:, t], alpha / 2)
        fired |= ready & (lo_c - hi_b > 0.0)  # a margin of zero: the strictest guard
    assert fired.mean() <= alpha


def test_assignment_is_deterministic_and_near_its_share() -> None:
    from pilothouse.rollout.model import assignment_point

    points = [assignment_point("ro_x", f"user:{i}") for i in range(20_000)]
    assert points == [assignment_point("ro_x", f"user:{i}") for i in range(20_000)]
    share = sum(p < 0.1 for p in points) / len(points)
    assert abs(share - 0.1) < 3 * math.sqrt(0.1 * 0.9 / len(points))
