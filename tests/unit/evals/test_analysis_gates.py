"""Per-case aggregation, slices, paired comparisons, flakiness, gates and exit codes."""

from __future__ import annotations

import msgspec
import pytest

from pilothouse.evals.analysis import (
    case_values,
    compare_metric,
    reported_metrics,
    summarise,
    totals,
)
from pilothouse.evals.gates import evaluate_gates, exit_code
from pilothouse.evals.model import Sample
from pilothouse.evals.suite import GateSpec
from tests.unit.evals.evalkit import record, verdict


def gate(**kw: object) -> GateSpec:
    return msgspec.convert(kw, GateSpec)


def passes(n_pass: int, n_fail: int, prefix: str = "c") -> dict[str, list[bool | None]]:
    return {f"{prefix}{i}": [i < n_pass] for i in range(n_pass + n_fail)}


def test_case_values_average_repeats_and_leave_out_errors() -> None:
    run = record(
        {"a": [True, False, True], "b": [None, None, None], "c": [False, None, False]}, repeats=3
    )
    assert case_values(run, "exact.pass_rate") == {"a": pytest.approx(2 / 3), "c": 0.0}
    stats = summarise(run)
    overall = stats.stat("exact.accuracy")
    assert overall is not None
    assert (overall.n, overall.errors) == (2, 4)
    assert overall.mean == pytest.approx(1 / 3)
    flaky = stats.flaky[0]
    assert flaky.cases == [("a", pytest.approx(2 / 3))]


def test_slices_get_their_own_intervals() -> None:
    meta = {"a": {"topic": "geo"}, "b": {"topic": "geo"}, "c": {"topic": "math"}, "d": {}}
    run = record({"a": [True], "b": [False], "c": [True], "d": [True]}, metadata=meta)
    summary = summarise(run)
    geo = summary.stat("exact.pass_rate", "metadata.topic=geo")
    math_ = summary.stat("exact.pass_rate", "metadata.topic=math")
    none = summary.stat("exact.pass_rate", "metadata.topic=(none)")
    assert geo is not None and (geo.n, geo.mean, geo.low, geo.high) == (2, 0.5, 0.0, 1.0)
    assert math_ is not None and math_.n == 1
    assert none is not None and none.n == 1


def test_mean_is_reported_only_for_graded_scorers() -> None:
    run = record({"a": [True], "b": [False]})
    assert reported_metrics(run) == ["exact.pass_rate"]
    run.samples[0].verdicts = [verdict("exact", True, value=4.0)]
    assert reported_metrics(run) == ["exact.pass_rate", "exact.mean"]


def test_paired_comparison_uses_mcnemar_and_lists_flips() -> None:
    base = record({**passes(40, 0)})
    now = record({f"c{i}": [i >= 12] for i in range(40)})  # 12 cases flipped to fail
    found = compare_metric(now, base, "exact.pass_rate")
    assert found is not None
    assert (found.n, found.baseline, found.current) == (40, 1.0, 0.7)
    assert found.diff == pytest.approx(-0.3)
    assert found.test == "mcnemar-exact"
    assert found.p_value == pytest.approx(2 / 2**12)
    assert found.to_fail == sorted(f"c{i}" for i in range(12)) and found.to_pass == []
    assert found.high < 0


def test_comparison_with_repeats_uses_the_sign_flip_test() -> None:
    base = record({f"c{i}": [True, True] for i in range(8)}, repeats=2)
    now = record({f"c{i}": [True, i % 2 == 0] for i in range(8)}, repeats=2)
    found = compare_metric(now, base, "exact.pass_rate")
    assert found is not None and found.test == "sign-flip-exact"
    assert found.p_value == pytest.approx(2 / 16)  # 4 equal drops: 2 of 2**4 patterns as extreme


def test_no_shared_cases_means_no_comparison() -> None:
    assert (
        compare_metric(record(passes(3, 0, "x")), record(passes(3, 0, "y")), "exact.pass_rate")
        is None
    )


def test_min_and_max_gates() -> None:
    run = record(passes(7, 3))
    summary = summarise(run)
    results = evaluate_gates(
        [
            gate(metric="exact.accuracy", min=0.6),
            gate(metric="exact.pass_rate", min=0.8),
            gate(metric="run.error_rate", max=0.0),
            gate(metric="run.cost_usd", max=1),
        ],
        run,
        summary,
        None,
    )
    assert [r.status for r in results] == ["pass", "fail", "pass", "pass"]
    assert results[1].detail.startswith("0.700 [") and results[1].detail.endswith(
        ": below the minimum 0.8"
    )
    assert exit_code(results, complete=True) == 1
    assert exit_code(results[:1], complete=True) == 0
    assert exit_code(results[:1], complete=False) == 2


def test_a_gate_without_values_is_an_error_not_a_pass() -> None:
    run = record({"a": [None], "b": [None]})
    results = evaluate_gates([gate(metric="exact.pass_rate", min=0.1)], run, summarise(run), None)
    assert results[0].status == "error"
    assert exit_code(results, complete=True) == 2
    unknown_cost = record(passes(2, 0))
    unknown_cost.samples[0].cost_pico = None
    cost_gate = evaluate_gates(
        [gate(metric="run.cost_usd", max=1)], unknown_cost, summarise(unknown_cost), None
    )
    assert cost_gate[0].status == "error"


def test_max_drop_fails_only_on_a_significant_drop() -> None:
    drop = gate(metric="exact.pass_rate", max_drop=0.02, vs="baseline")
    base = record(passes(90, 10))
    big_drop = record({f"c{i}": [i < 70] for i in range(100)})  # 20 cases flipped to fail
    result = evaluate_gates([drop], big_drop, summarise(big_drop), base)[0]
    assert result.status == "fail"
    assert "significant drop > 0.02" in result.detail and "mcnemar" in result.detail

    small_base = record(passes(9, 1))
    noisy = record({f"c{i}": [i < 7] for i in range(10)})  # 0.9 -> 0.7 on 10 cases
    result = evaluate_gates([drop], noisy, summarise(noisy), small_base)[0]
    assert result.status == "pass"
    assert "not significant at alpha=0.05" in result.detail

    tolerated = evaluate_gates(
        [gate(metric="exact.pass_rate", max_drop=0.5, vs="baseline")],
        big_drop,
        summarise(big_drop),
        base,
    )[0]
    assert tolerated.status == "pass" and "drop within 0.5" in tolerated.detail

    skipped = evaluate_gates([drop], big_drop, summarise(big_drop), None)[0]
    assert skipped.status == "skipped"
    assert exit_code([skipped], complete=True) == 0


def test_max_drop_gate_on_a_slice() -> None:
    meta = {f"c{i}": {"topic": "geo" if i < 50 else "math"} for i in range(100)}
    base = record(passes(100, 0), metadata=meta)
    # Only math cases regress.
    now = record({f"c{i}": [i < 75] for i in range(100)}, metadata=meta)
    spec = [
        gate(metric="exact.pass_rate", max_drop=0.05, vs="baseline", slice="metadata.topic=geo"),
        gate(metric="exact.pass_rate", max_drop=0.05, vs="baseline", slice="metadata.topic=math"),
    ]
    results = evaluate_gates(spec, now, summarise(now), base)
    assert [r.status for r in results] == ["pass", "fail"]


def test_totals_keep_money_exact() -> None:
    run = record(passes(3, 0))
    for sample, cost in zip(run.samples, (1, 2, 10**12), strict=True):
        sample.cost_pico = cost
    run.samples.append(Sample(case_id="c0", repeat=1, error="HTTP 502"))
    summed = totals(run)
    assert summed.cost_pico == 10**12 + 3
    assert summed.errors == 1 and summed.error_rate == 0.25
    assert summarise(run).run_metric("run.cost_usd") == pytest.approx(1.000000000003)


def test_performance_budget_gates_bound_cost_per_case_and_latency_in_seconds() -> None:
    run = record(passes(4, 0))
    for sample, (cost, ms) in zip(
        run.samples,
        ((10**9, 100.0), (3 * 10**9, 200.0), (10**9, 300.0), (3 * 10**9, 4000.0)),
        strict=True,
    ):
        sample.cost_pico, sample.latency_ms = cost, ms
    summary = summarise(run)
    assert summary.run_metric("cost.usd_per_case") == pytest.approx(0.002)  # $0.008 / 4 cases
    assert summary.run_metric("latency.p95_s") == pytest.approx(
        summary.totals.latency_p95_ms / 1000  # type: ignore[operator]
    )
    results = evaluate_gates(
        [
            gate(metric="cost.usd_per_case", max=0.0025),
            gate(metric="cost.usd_per_case", max=0.001),
            gate(metric="latency.p95_s", max=5),
            gate(metric="latency.p95_s", max=1),
        ],
        run,
        summary,
        None,
    )
    assert [r.status for r in results] == ["pass", "fail", "pass", "fail"]
    assert exit_code(results, complete=True) == 1
