"""From samples to numbers a release manager can trust.

The unit of analysis is the case: with ``repeats > 1`` a case's value is the
mean over its repeats, and intervals resample cases, not repeats (repeats of
one case are not independent evidence). Scorer errors are excluded from
means and counted; they never turn into zeros.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from pilothouse.evals.model import RunRecord
from pilothouse.evals.stats import (
    bootstrap_ci,
    mcnemar,
    paired_bootstrap_ci,
    quantile,
    seed_for,
    sign_flip_test,
)
from pilothouse.limits.money import pico_to_usd

NONE_SLICE = "(none)"


@dataclass(frozen=True, slots=True)
class MetricStat:
    metric: str
    slice: str | None
    n: int
    mean: float | None
    low: float | None
    high: float | None
    errors: int = 0


@dataclass(frozen=True, slots=True)
class Comparison:
    metric: str
    slice: str | None
    n: int
    baseline: float
    current: float
    diff: float
    low: float
    high: float
    p_value: float
    test: str
    to_fail: list[str] = field(default_factory=list)
    to_pass: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Flaky:
    scorer: str
    cases: list[tuple[str, float]]  # (case id, share of repeats that passed)


@dataclass(frozen=True, slots=True)
class Totals:
    cases: int
    samples: int
    errors: int
    cached: int
    cost_pico: int | None
    scoring_cost_pico: int
    input_tokens: int
    output_tokens: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.samples if self.samples else 0.0


@dataclass(frozen=True, slots=True)
class Summary:
    metrics: list[MetricStat]
    comparisons: list[Comparison]
    flaky: list[Flaky]
    totals: Totals

    def stat(self, metric: str, slice_: str | None = None) -> MetricStat | None:
        metric = canonical(metric)
        for stat in self.metrics:
            if stat.metric == metric and stat.slice == slice_:
                return stat
        return None

    def run_metric(self, metric: str) -> float | None:
        """A whole-run figure: ``run.*``, or the budget forms ``cost.*``/``latency.*``."""
        totals = self.totals
        cost = None if totals.cost_pico is None else float(pico_to_usd(totals.cost_pico))
        answered = totals.samples - totals.errors
        return {
            "run.error_rate": totals.error_rate,
            "run.cost_usd": cost,
            "run.latency_p50_ms": totals.latency_p50_ms,
            "run.latency_p95_ms": totals.latency_p95_ms,
            "cost.usd_per_case": cost / answered if cost is not None and answered else None,
            "latency.p50_s": _seconds(totals.latency_p50_ms),
            "latency.p95_s": _seconds(totals.latency_p95_ms),
        }.get(metric)


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000


def is_run_metric(metric: str) -> bool:
    """Whole-run metrics (bounded with min/max only), as opposed to per-case scorer metrics."""
    return metric.startswith(("run.", "cost.", "latency."))


def canonical(metric: str) -> str:
    """``accuracy`` is another name for ``pass_rate``."""
    return metric[: -len("accuracy")] + "pass_rate" if metric.endswith(".accuracy") else metric


def split_metric(metric: str) -> tuple[str, str]:
    scorer, _, kind = canonical(metric).rpartition(".")
    return scorer, kind


def case_values(record: RunRecord, metric: str, slice_: str | None = None) -> dict[str, float]:
    """Per-case value of a metric (mean over repeats; errors and skips left out)."""
    scorer, kind = split_metric(metric)
    keep = _slice_filter(record, slice_)
    per_case: dict[str, list[float]] = defaultdict(list)
    for sample in record.samples:
        if keep is not None and sample.case_id not in keep:
            continue
        verdict = sample.verdict(scorer)
        if verdict is None or not verdict.scored:
            continue
        value = float(bool(verdict.passed)) if kind == "pass_rate" else verdict.value
        named = (verdict.detail or {}).get("metrics")  # e.g. retrieval.ndcg_at_10
        if isinstance(named, dict) and isinstance(named.get(kind), int | float):
            value = float(named[kind])
        if value is not None and math.isfinite(value):
            per_case[sample.case_id].append(value)
    return {case: math.fsum(v) / len(v) for case, v in per_case.items()}


def scorer_errors(record: RunRecord, scorer: str, slice_: str | None = None) -> int:
    keep = _slice_filter(record, slice_)
    return sum(
        1
        for s in record.samples
        if (keep is None or s.case_id in keep)
        and (v := s.verdict(scorer)) is not None
        and v.error is not None
    )


def slice_values(record: RunRecord, path: str) -> dict[str, set[str]]:
    groups: dict[str, set[str]] = defaultdict(set)
    for case in record.cases.values():
        value = case.field(path)
        groups[NONE_SLICE if value is None else str(value)].add(case.id)
    return dict(sorted(groups.items()))


def _slice_filter(record: RunRecord, slice_: str | None) -> set[str] | None:
    if slice_ is None:
        return None
    path, _, value = slice_.partition("=")
    return slice_values(record, path).get(value, set())


def metric_stat(
    record: RunRecord, metric: str, slice_: str | None, *, resamples: int, seed: int
) -> MetricStat:
    values = case_values(record, metric, slice_)
    errors = scorer_errors(record, split_metric(metric)[0], slice_)
    return _stat(metric, slice_, values, errors, resamples=resamples, seed=seed)


def _stat(
    metric: str,
    slice_: str | None,
    values: dict[str, float],
    errors: int,
    *,
    resamples: int,
    seed: int,
) -> MetricStat:
    if not values:
        return MetricStat(canonical(metric), slice_, 0, None, None, None, errors)
    data = [values[k] for k in sorted(values)]
    ci = bootstrap_ci(data, resamples=resamples, seed=seed_for(metric, slice_ or "", base=seed))
    return MetricStat(canonical(metric), slice_, ci.n, ci.mean, ci.low, ci.high, errors)


def reported_metrics(record: RunRecord) -> list[str]:
    """``pass_rate`` for every scorer, ``mean`` too where values are not just 0/1."""
    out: list[str] = []
    for scorer in record.info.scorers:
        out.append(f"{scorer}.pass_rate")
        values = (
            v.value
            for s in record.samples
            if (v := s.verdict(scorer)) is not None and v.scored and v.value is not None
        )
        if any(value not in (0.0, 1.0) for value in values):
            out.append(f"{scorer}.mean")
    return out


def compare_metric(
    current: RunRecord,
    baseline: RunRecord,
    metric: str,
    slice_: str | None = None,
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> Comparison | None:
    """Paired comparison over the cases both runs scored; ``None`` if none are shared."""
    now = case_values(current, metric, slice_)
    before = case_values(baseline, metric, slice_)
    shared = sorted(set(now) & set(before))
    if not shared:
        return None
    cur = [now[c] for c in shared]
    base = [before[c] for c in shared]
    ci = paired_bootstrap_ci(
        cur, base, resamples=resamples, seed=seed_for("diff", metric, base=seed)
    )
    to_fail = [c for c in shared if before[c] >= 0.5 > now[c]]
    to_pass = [c for c in shared if now[c] >= 0.5 > before[c]]
    binary = all(v in (0.0, 1.0) for v in (*cur, *base))
    if split_metric(metric)[1] == "pass_rate" and binary:
        p_value, test = mcnemar(len(to_pass), len(to_fail))
    else:
        diffs = [a - b for a, b in zip(cur, base, strict=True)]
        p_value, test = sign_flip_test(diffs, seed=seed_for("test", metric, base=seed))
    return Comparison(
        canonical(metric),
        slice_,
        len(shared),
        math.fsum(base) / len(base),
        math.fsum(cur) / len(cur),
        ci.mean,
        ci.low,
        ci.high,
        p_value,
        test,
        to_fail,
        to_pass,
    )


def flakiness(record: RunRecord) -> list[Flaky]:
    if record.info.repeats <= 1:
        return []
    out = []
    for scorer in record.info.scorers:
        shares = case_values(record, f"{scorer}.pass_rate")
        flaky = sorted((c, v) for c, v in shares.items() if 0.0 < v < 1.0)
        out.append(Flaky(scorer, flaky))
    return out


def totals(record: RunRecord) -> Totals:
    samples = record.samples
    costs = [s.cost_pico for s in samples if s.error is None]
    latencies = sorted(s.latency_ms for s in samples if s.error is None and not s.cached)
    return Totals(
        cases=len(record.cases),
        samples=len(samples),
        errors=sum(1 for s in samples if s.error is not None),
        cached=sum(1 for s in samples if s.cached),
        cost_pico=None if any(c is None for c in costs) else sum(c for c in costs if c is not None),
        scoring_cost_pico=sum(s.scoring_cost_pico for s in samples),
        input_tokens=sum(s.input_tokens for s in samples),
        output_tokens=sum(s.output_tokens for s in samples),
        latency_p50_ms=quantile(latencies, 0.5) if latencies else None,
        latency_p95_ms=quantile(latencies, 0.95) if latencies else None,
    )


def summarise(
    record: RunRecord, baseline: RunRecord | None = None, *, resamples: int = 2000, seed: int = 0
) -> Summary:
    metrics = reported_metrics(record)
    values = {m: case_values(record, m) for m in metrics}
    errors: dict[str, Counter[str]] = defaultdict(Counter)
    for sample in record.samples:
        for verdict in sample.verdicts:
            if verdict.error is not None:
                errors[verdict.scorer][sample.case_id] += 1
    stats = []
    for metric in metrics:
        scorer_errs = sum(errors[split_metric(metric)[0]].values())
        stats.append(
            _stat(metric, None, values[metric], scorer_errs, resamples=resamples, seed=seed)
        )
    for path in record.info.slices:
        # Group once per slice path: per-slice work stays proportional to the slice's size.
        for value, keep in slice_values(record, path).items():
            slice_ = f"{path}={value}"
            for metric in metrics:
                subset = {c: values[metric][c] for c in keep if c in values[metric]}
                errs = sum(errors[split_metric(metric)[0]][c] for c in keep)
                stats.append(_stat(metric, slice_, subset, errs, resamples=resamples, seed=seed))
    comparisons: list[Comparison] = []
    if baseline is not None:
        for metric in metrics:
            found = compare_metric(record, baseline, metric, resamples=resamples, seed=seed)
            if found is not None:
                comparisons.append(found)
    return Summary(stats, comparisons, flakiness(record), totals(record))


def usd(pico: int | None) -> str:
    """Exact dollars for reports ('n/a' when a remote gateway did not say)."""
    if pico is None:
        return "n/a"
    return f"${pico_to_usd(pico):f}" if pico else "$0"


def as_decimal(pico: int | None) -> Decimal | None:
    return None if pico is None else pico_to_usd(pico)
