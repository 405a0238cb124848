"""The HTML report: one self-contained file (inline CSS and SVG, no scripts, no fetches).

Every case opens to its input, expected answer, output, each verdict's
explanation and the request ids that link it to the gateway's traces.
"""

from __future__ import annotations

from typing import Any

import jinja2
import orjson

from pilothouse.evals.analysis import reported_metrics, usd
from pilothouse.evals.model import Case, Sample
from pilothouse.evals.reports import ReportData
from pilothouse.evals.reports.svg import bars, forest
from pilothouse.evals.reports.text import (
    fmt,
    fmt_ci,
    fmt_p,
    run_line,
    slice_groups,
    target_text,
)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("pilothouse.evals.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _badge(sample: Sample, scorer: str) -> tuple[str, str]:
    """(css state, tooltip) for one scorer's cell."""
    if sample.error is not None:
        return "err", f"target error: {sample.error}"
    verdict = sample.verdict(scorer)
    if verdict is None:
        return "na", "not applied"
    if verdict.error is not None:
        return "err", verdict.error
    if verdict.skipped is not None:
        return "na", verdict.skipped
    state = "pass" if verdict.passed else "fail"
    return state, verdict.explanation or state


def _pretty(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def _case_view(data: ReportData, case: Case, samples: list[Sample]) -> dict[str, Any]:
    scorers = data.record.info.scorers
    views = []
    states: set[str] = set()
    by_scorer: set[tuple[str, str]] = set()
    for sample in samples:
        badges = [(s, *_badge(sample, s)) for s in scorers]
        states.update(state for _s, state, _t in badges)
        by_scorer.update((s, state) for s, state, _t in badges)
        views.append(
            {
                "sample": sample,
                "badges": badges,
                "link": data.trace_link(sample),
                "cost": usd(sample.cost_pico),
            }
        )
    status = "err" if "err" in states else ("fail" if "fail" in states else "pass")
    # A red bar alone does not say which of several scorers failed: name them.
    failed = sorted({s for s, state in by_scorer if state == "fail"})
    errored = sorted({s for s, state in by_scorer if state == "err"})
    return {
        "failed": failed,
        "errored": errored,
        "case": case,
        "input": _pretty(case.input),
        "expected": _pretty(case.expected),
        "context": _pretty(case.context),
        "meta": ", ".join(f"{k}={v}" for k, v in case.metadata.items()),
        "samples": views,
        "status": status,
    }


def _slice_tables(data: ReportData) -> list[dict[str, Any]]:
    metrics = reported_metrics(data.record)
    tables = []
    for path, stats in slice_groups(data.summary).items():
        values = list(dict.fromkeys(s.slice.partition("=")[2] for s in stats if s.slice))
        cell = {(s.slice.partition("=")[2], s.metric): s for s in stats if s.slice}
        rows = [(v, [cell.get((v, m)) for m in metrics]) for v in values]
        tables.append({"path": path, "metrics": metrics, "rows": rows})
    return tables


def _charts(data: ReportData) -> dict[str, str]:
    overall = [
        (s.metric, s.mean, s.low, s.high)
        for s in data.summary.metrics
        if s.slice is None
        and s.mean is not None
        and s.low is not None
        and s.high is not None
        and s.metric.endswith("pass_rate")
    ]
    charts = {"metrics": bars(overall, "pass rates with 95% CI") if overall else ""}
    comps = [(c.metric, c.diff, c.low, c.high, c.p_value < 0.05) for c in data.summary.comparisons]
    charts["comparison"] = forest(comps, "change vs baseline with 95% CI") if comps else ""
    return charts


def render(data: ReportData) -> str:
    record = data.record
    by_case = record.by_case()
    status = {0: "ok", 1: "fail"}.get(data.exit_code, "incomplete")
    context = {
        "d": data,
        "info": record.info,
        "status": status,
        "headline": data.headline(),
        "run_line": run_line(record.info, markdown=False),
        "target": target_text(record.info),
        "totals": data.summary.totals,
        "cost": usd(data.summary.totals.cost_pico),
        "judge_cost": usd(data.summary.totals.scoring_cost_pico),
        "overall": [s for s in data.summary.metrics if s.slice is None],
        "slices": _slice_tables(data),
        "charts": _charts(data),
        "cases": [_case_view(data, record.cases[c], by_case.get(c, [])) for c in record.cases],
        "fmt": fmt,
        "fmt_ci": fmt_ci,
        "fmt_p": fmt_p,
    }
    return _environment().get_template("report.html.j2").render(**context)
