"""The Markdown report: sized for a pull-request comment (GitHub allows 65,536 chars)."""

from __future__ import annotations

from pilothouse.evals.analysis import Comparison, MetricStat, usd
from pilothouse.evals.reports import ReportData
from pilothouse.evals.reports.text import (
    ICONS,
    failures,
    fmt,
    fmt_ci,
    fmt_p,
    run_line,
    slice_groups,
)

LIMIT = 60_000
LIST_LIMIT = 10


def _cell(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _gates(data: ReportData) -> list[str]:
    if not data.gates:
        return []
    lines = ["### Gates", "", "| | gate | observed | detail |", "|---|---|---|---|"]
    for g in data.gates:
        lines.append(
            f"| {ICONS[g.status]} | `{g.name}` | {fmt(g.observed)} | {_cell(g.detail, 160)} |"
        )
    return [*lines, ""]


def _metric_rows(stats: list[MetricStat]) -> list[str]:
    lines = ["| metric | mean | 95% CI | n | errors |", "|---|---|---|---|---|"]
    for s in stats:
        lines.append(
            f"| `{s.metric}` | {fmt(s.mean)} | {fmt_ci(s.low, s.high)} | {s.n} | {s.errors} |"
        )
    return lines


def _slice_table(path: str, stats: list[MetricStat]) -> list[str]:
    """Slice values as rows, metrics as columns: compact enough for a PR comment."""
    metrics = list(dict.fromkeys(s.metric for s in stats))
    values = list(dict.fromkeys(str(s.slice).partition("=")[2] for s in stats))
    cells = {(str(s.slice).partition("=")[2], s.metric): s for s in stats}
    lines = [
        f"| {path} | " + " | ".join(f"`{m}`" for m in metrics) + " |",
        "|---" * (len(metrics) + 1) + "|",
    ]
    for value in values:
        row = []
        for metric in metrics:
            s = cells.get((value, metric))
            row.append("-" if s is None or s.mean is None else f"{s.mean:.2f} (n={s.n})")
        lines.append(f"| {_cell(value, 40)} | " + " | ".join(row) + " |")
    return lines


def _metrics(data: ReportData) -> list[str]:
    overall = [s for s in data.summary.metrics if s.slice is None]
    lines = ["### Metrics", "", *_metric_rows(overall), ""]
    groups = slice_groups(data.summary)
    if groups:
        lines += ["<details><summary>By slice (95% CIs in the HTML report)</summary>", ""]
        for path, stats in groups.items():
            lines += [*_slice_table(path, stats), ""]
        lines += ["</details>", ""]
    return lines


def _flips(c: Comparison) -> str:
    return f"{len(c.to_fail)} ↓ / {len(c.to_pass)} ↑" if c.metric.endswith("pass_rate") else "-"


def _comparison(data: ReportData) -> list[str]:
    comparisons = data.summary.comparisons
    if not comparisons:
        return []
    base = data.record.info.baseline_id or "baseline"
    lines = [
        f"### Compared with `{base}`",
        "",
        "| metric | baseline | current | change | 95% CI | p | test | flipped |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        lines.append(
            f"| `{c.metric}` | {fmt(c.baseline)} | {fmt(c.current)} | {c.diff:+.3f} | "
            f"{fmt_ci(c.low, c.high, signed=True)} | {fmt_p(c.p_value)} | {c.test} | {_flips(c)} |"
        )
    lines.append("")
    for c in comparisons:
        if c.to_fail:
            shown = ", ".join(f"`{x}`" for x in c.to_fail[:LIST_LIMIT])
            more = f" (+{len(c.to_fail) - LIST_LIMIT} more)" if len(c.to_fail) > LIST_LIMIT else ""
            lines.append(f"- `{c.metric}` now failing: {shown}{more}")
    return [*lines, ""]


def _flaky(data: ReportData) -> list[str]:
    flaky = [f for f in data.summary.flaky if f.cases]
    if not flaky:
        return []
    lines = [f"### Flaky cases (repeats = {data.record.info.repeats})", ""]
    for f in flaky:
        shown = ", ".join(f"`{c}` ({share:.0%})" for c, share in f.cases[:LIST_LIMIT])
        lines.append(f"- `{f.scorer}`: {len(f.cases)} flaky: {shown}")
    return [*lines, ""]


def _failures(data: ReportData) -> list[str]:
    rows = failures(data.record)
    if not rows:
        return []
    lines = [
        f"### Failures (first {min(len(rows), LIST_LIMIT)} of {len(rows)})",
        "",
        "| case | scorer | expected | got |",
        "|---|---|---|---|",
    ]
    for case_id, scorer, expected, got in rows[:LIST_LIMIT]:
        lines.append(f"| `{case_id}` | {scorer} | {_cell(expected)} | {_cell(got)} |")
    return [*lines, ""]


def render(data: ReportData) -> str:
    totals = data.summary.totals
    icon = "✅" if data.exit_code == 0 else ("❌" if data.exit_code == 1 else "⚠️")
    lines = [
        f"## {icon} {data.headline()}",
        "",
        run_line(data.record.info),
        "",
        f"Cost {usd(totals.cost_pico)} (judges {usd(totals.scoring_cost_pico)}) · target errors "
        f"{totals.errors} ({totals.error_rate:.1%}) · cached {totals.cached} · latency p50 "
        f"{fmt(totals.latency_p50_ms, 0)} ms, p95 {fmt(totals.latency_p95_ms, 0)} ms",
        "",
    ]
    lines += [f"> ⚠️ {p}" for p in data.problems]
    if data.problems:
        lines.append("")
    for part in (_gates, _metrics, _comparison, _flaky, _failures):
        lines += part(data)
    text = "\n".join(lines)
    if len(text) > LIMIT:
        text = text[:LIMIT] + "\n\n… (truncated; see the HTML or JSON report)\n"
    return text
