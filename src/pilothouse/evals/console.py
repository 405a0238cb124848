"""Rich renderings for the CLI: progress while running, tables when done."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from pilothouse.evals.analysis import Comparison, MetricStat, usd
from pilothouse.evals.calibrate import Calibration
from pilothouse.evals.model import RunInfo, Sample
from pilothouse.evals.reports import ReportData
from pilothouse.evals.reports.text import ICONS, fmt, fmt_ci, fmt_p, target_text

STATUS_STYLE = {"pass": "green", "fail": "red", "error": "yellow", "skipped": "dim"}


class RunProgress:
    """Progress bar fed by the runner's ``on_start``/``on_sample`` callbacks."""

    def __init__(self, progress: Progress, description: str) -> None:
        self.progress = progress
        self.description = description
        self.task: TaskID | None = None
        self.failed = 0
        self.errors = 0

    def on_start(self, todo: int, done: int) -> None:
        self.task = self.progress.add_task(
            self.description, total=todo + done, completed=done, failed=0, errors=0
        )

    def on_sample(self, sample: Sample) -> None:
        if sample.error is not None:
            self.errors += 1
        elif any(v.passed is False for v in sample.verdicts):
            self.failed += 1
        if self.task is not None:
            self.progress.update(self.task, advance=1, failed=self.failed, errors=self.errors)


@contextmanager
def run_progress(console: Console, description: str) -> Iterator[RunProgress]:
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[red]{task.fields[failed]} failing[/] [yellow]{task.fields[errors]} errors[/]"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        yield RunProgress(progress, description)


def metrics_table(stats: list[MetricStat], title: str = "Metrics") -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("metric", "mean", "95% CI", "n", "errors"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for s in stats:
        name = s.metric if s.slice is None else f"{s.slice} · {s.metric}"
        table.add_row(name, fmt(s.mean), fmt_ci(s.low, s.high), str(s.n), str(s.errors))
    return table


def comparison_table(comparisons: list[Comparison], baseline: str) -> Table:
    table = Table(title=f"Compared with {baseline}", title_justify="left")
    for column in ("metric", "baseline", "current", "change", "95% CI", "p", "test", "flips ↓/↑"):
        table.add_column(column, justify="left" if column in ("metric", "test") else "right")
    for c in comparisons:
        table.add_row(
            c.metric,
            fmt(c.baseline),
            fmt(c.current),
            f"{c.diff:+.3f}",
            fmt_ci(c.low, c.high, signed=True),
            fmt_p(c.p_value),
            c.test,
            f"{len(c.to_fail)}/{len(c.to_pass)}",
        )
    return table


def print_report(console: Console, data: ReportData) -> None:
    overall = [s for s in data.summary.metrics if s.slice is None]
    console.print(metrics_table(overall))
    if data.summary.comparisons:
        base = data.record.info.baseline_id or "baseline"
        console.print(comparison_table(data.summary.comparisons, base))
    for flaky in data.summary.flaky:
        if flaky.cases:
            shown = ", ".join(f"{c} ({s:.0%})" for c, s in flaky.cases[:10])
            console.print(f"[yellow]flaky[/] {flaky.scorer}: {len(flaky.cases)} cases: {shown}")
    totals = data.summary.totals
    console.print(
        f"cost {usd(totals.cost_pico)} (judges {usd(totals.scoring_cost_pico)}) · "
        f"{totals.samples} samples · {totals.errors} target errors · {totals.cached} cached",
        highlight=False,
    )
    if data.gates:
        table = Table(title="Gates", title_justify="left")
        for column in ("", "gate", "detail"):
            table.add_column(column)
        for g in data.gates:
            style = STATUS_STYLE[g.status]
            table.add_row(ICONS[g.status], f"[{style}]{g.name}[/]", g.detail)
        console.print(table)
    for problem in data.problems:
        console.print(f"[yellow]incomplete:[/] {problem}", highlight=False)
    style = {0: "bold green", 1: "bold red"}.get(data.exit_code, "bold yellow")
    console.print(f"[{style}]{data.headline()}[/]", highlight=False)


def runs_table(runs: list[RunInfo]) -> Table:
    table = Table(title="Eval runs", title_justify="left")
    for column in ("run", "suite", "started (UTC)", "status", "cases", "gates", "target"):
        table.add_column(column, no_wrap=column in ("run", "started (UTC)"))
    for info in runs:
        gates = info.summary.get("gates", []) if info.summary else []
        failed = sum(1 for g in gates if g.get("status") == "fail")
        verdict = "-" if not gates else ("pass" if not failed else f"{failed} failed")
        started = info.started_at.strftime("%Y-%m-%d %H:%M") if info.started_at else "-"
        table.add_row(
            info.id, info.suite, started, info.status, str(info.n_cases), verdict, target_text(info)
        )
    return table


def calibration_tables(console: Console, results: list[Calibration]) -> None:
    for cal in results:
        kappa = "undefined" if cal.kappa is None else f"{cal.kappa:.3f}"
        agreement = "-" if cal.agreement is None else f"{cal.agreement:.1%}"
        console.print(
            f"[bold]{cal.scorer}[/]: n={cal.n} agreement {agreement} · Cohen's kappa {kappa} "
            f"({interpret_kappa(cal.kappa)})",
            highlight=False,
        )
        if cal.matrix:
            console.print(_matrix("human \\ judge", ["pass", "fail"], cal.matrix))
        if cal.score_matrix:
            console.print(_matrix("human \\ judge (scores)", cal.score_labels, cal.score_matrix))
            if cal.score_kappa is not None:
                console.print(f"score-level kappa {cal.score_kappa:.3f}")
        for d in cal.disagreements[:20]:
            console.print(
                f"  [red]disagree[/] {d['id']}: human {d['human']}, judge {d['judge']} "
                f"({d['explanation']})",
                highlight=False,
            )
        for e in cal.judge_errors[:20]:
            console.print(f"  [yellow]judge error[/] {e['id']}: {e['error']}", highlight=False)
        if cal.unknown_cases:
            console.print(f"  [yellow]not in the suite:[/] {', '.join(cal.unknown_cases[:20])}")


def _matrix(corner: str, labels: list[str], matrix: list[list[int]]) -> Table:
    table = Table(show_header=True)
    table.add_column(corner)
    for label in labels:
        table.add_column(f"judge {label}", justify="right")
    for label, row in zip(labels, matrix, strict=True):
        table.add_row(f"human {label}", *(str(n) for n in row))
    return table


def interpret_kappa(kappa: float | None) -> str:
    """Landis & Koch's conventional bands: a reading aid, not a threshold."""
    if kappa is None:
        return "raters used a single label"
    for bound, word in (
        (0.0, "poor"),
        (0.2, "slight"),
        (0.4, "fair"),
        (0.6, "moderate"),
        (0.8, "substantial"),
    ):
        if kappa <= bound:
            return word
    return "almost perfect"


def kv(console: Console, pairs: list[tuple[str, Any]]) -> None:
    for key, value in pairs:
        console.print(f"[dim]{key}:[/] {value}", highlight=False)
