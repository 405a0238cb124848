"""Number formatting and row selection shared by the report renderers."""

from __future__ import annotations

from collections import defaultdict

from pilothouse.evals.analysis import MetricStat, Summary
from pilothouse.evals.model import RunInfo, RunRecord

ICONS = {"pass": "✅", "fail": "❌", "skipped": "⏭️", "error": "⚠️"}


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def fmt_ci(low: float | None, high: float | None, *, signed: bool = False) -> str:
    if low is None or high is None:
        return "-"
    return f"[{low:+.3f}, {high:+.3f}]" if signed else f"[{low:.3f}, {high:.3f}]"


def fmt_p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def target_text(info: RunInfo) -> str:
    return ", ".join(f"{k}: {v}" for k, v in info.target.items()) or "-"


def run_line(info: RunInfo, *, markdown: bool = True) -> str:
    started = info.started_at.strftime("%Y-%m-%d %H:%M UTC") if info.started_at else "-"
    tick = "`" if markdown else ""
    parts = [
        f"Run {tick}{info.id}{tick}",
        f"target {tick}{target_text(info)}{tick}",
        f"{info.n_cases} cases x {info.repeats}",
        started,
        f"pilothouse {info.version}" if info.version else "",
    ]
    return " · ".join(p for p in parts if p)


def slice_groups(summary: Summary) -> dict[str, list[MetricStat]]:
    """Slice statistics grouped by slice path (``metadata.topic``)."""
    groups: dict[str, list[MetricStat]] = defaultdict(list)
    for stat in summary.metrics:
        if stat.slice is not None:
            groups[stat.slice.partition("=")[0]].append(stat)
    return dict(groups)


def sample_label(case_id: str, repeat: int, repeats: int) -> str:
    return f"{case_id}#{repeat}" if repeats > 1 else case_id


def failures(record: RunRecord) -> list[tuple[str, str, str, str]]:
    """(case, scorer, expected, got) for every failed or errored verdict and target error."""
    rows = []
    repeats = record.info.repeats
    for sample in record.samples:
        label = sample_label(sample.case_id, sample.repeat, repeats)
        if sample.error is not None:
            rows.append((label, "(target)", "an output", f"error: {sample.error}"))
            continue
        for verdict in sample.verdicts:
            if verdict.error is not None:
                rows.append(
                    (label, verdict.scorer, verdict.expected or "-", f"error: {verdict.error}")
                )
            elif verdict.passed is False:
                got = verdict.explanation or (sample.output or "")
                rows.append((label, verdict.scorer, verdict.expected or "-", got))
    return rows
