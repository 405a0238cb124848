"""Release gates: the decision a run's exit code carries.

``min``/``max`` compare the metric's point estimate with the bound (the
interval is reported beside it). ``max_drop: D, vs: baseline`` fails only
when the metric fell by more than D *and* the paired test says the change is
real (p < ``alpha``, McNemar for pass/fail, sign-flip otherwise): noise never
blocks a release, and neither does a real but tolerated dip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pilothouse.evals.analysis import Summary, compare_metric, is_run_metric
from pilothouse.evals.model import RunRecord
from pilothouse.evals.suite import GateSpec

Status = Literal["pass", "fail", "skipped", "error"]
EXIT_OK, EXIT_GATE_FAILED, EXIT_INCOMPLETE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class GateResult:
    gate: GateSpec
    status: Status
    observed: float | None
    detail: str

    @property
    def name(self) -> str:
        return self.gate.describe()


def evaluate_gates(
    gates: list[GateSpec],
    record: RunRecord,
    summary: Summary,
    baseline: RunRecord | None,
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> list[GateResult]:
    results = []
    for gate in gates:
        if gate.vs == "baseline":
            results.append(_drop_gate(gate, record, baseline, resamples, seed))
        else:
            results.append(_bound_gate(gate, summary))
    return results


def _bound_gate(gate: GateSpec, summary: Summary) -> GateResult:
    if is_run_metric(gate.metric):
        value = summary.run_metric(gate.metric)
        shown = "" if value is None else f"{value:g}"
    else:
        stat = summary.stat(gate.metric, gate.slice)
        value = stat.mean if stat is not None and stat.n else None
        shown = (
            ""
            if stat is None or value is None
            else (f"{value:.3f} [{stat.low:.3f}, {stat.high:.3f}] n={stat.n}")
        )
    if value is None:
        return GateResult(gate, "error", None, "no value: nothing was scored for this metric")
    if gate.min is not None:
        ok = value >= gate.min
        why = f"at or above the minimum {gate.min:g}" if ok else f"below the minimum {gate.min:g}"
    else:
        assert gate.max is not None
        ok = value <= gate.max
        why = f"within the maximum {gate.max:g}" if ok else f"above the maximum {gate.max:g}"
    return GateResult(gate, "pass" if ok else "fail", value, f"{shown}: {why}")


def _drop_gate(
    gate: GateSpec, record: RunRecord, baseline: RunRecord | None, resamples: int, seed: int
) -> GateResult:
    assert gate.max_drop is not None
    if baseline is None:
        return GateResult(gate, "skipped", None, "no baseline given (--baseline RUN_ID|run.json)")
    found = compare_metric(
        record, baseline, gate.metric, gate.slice, resamples=resamples, seed=seed
    )
    if found is None:
        return GateResult(
            gate, "error", None, "no case was scored in both this run and the baseline"
        )
    drop = -found.diff
    significant = found.p_value < gate.alpha
    detail = (
        f"{found.baseline:.3f} -> {found.current:.3f} (change {found.diff:+.3f}, 95% CI "
        f"[{found.low:+.3f}, {found.high:+.3f}], p={found.p_value:.3g} {found.test}, "
        f"n={found.n} paired)"
    )
    if drop > gate.max_drop and significant:
        return GateResult(
            gate, "fail", found.current, f"{detail}: significant drop > {gate.max_drop:g}"
        )
    if drop > gate.max_drop:
        why = f"drop > {gate.max_drop:g} but not significant at alpha={gate.alpha:g}"
    else:
        why = f"drop within {gate.max_drop:g}"
    return GateResult(gate, "pass", found.current, f"{detail}: {why}")


def exit_code(results: list[GateResult], *, complete: bool) -> int:
    """0 gates pass; 1 a gate failed; 2 the run (or a gate) could not be evaluated."""
    if not complete or any(r.status == "error" for r in results):
        return EXIT_INCOMPLETE
    if any(r.status == "fail" for r in results):
        return EXIT_GATE_FAILED
    return EXIT_OK
