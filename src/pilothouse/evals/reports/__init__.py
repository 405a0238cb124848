"""Reports of one run: Markdown, self-contained HTML, JUnit XML and JSON.

All four are rendered from one :class:`ReportData`, so they never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pilothouse.evals.analysis import Summary
from pilothouse.evals.gates import GateResult
from pilothouse.evals.model import RunRecord, Sample


@dataclass(frozen=True, slots=True)
class ReportData:
    record: RunRecord
    summary: Summary
    gates: list[GateResult]
    problems: list[str] = field(default_factory=list)
    exit_code: int = 0
    trace_url: str | None = None  # e.g. "https://console/traces/{request_id}"

    def headline(self) -> str:
        """One line: the decision the exit code carries."""
        name = self.record.info.suite
        if self.exit_code == 2:
            return f"{name}: incomplete - the gates could not be decided"
        failed = [g for g in self.gates if g.status == "fail"]
        if failed:
            return f"{name}: {len(failed)} of {len(self.gates)} gates failed"
        if not self.gates:
            return f"{name}: completed (no gates)"
        checked = sum(1 for g in self.gates if g.status == "pass")
        return f"{name}: all {checked} checked gates passed"

    def trace_link(self, sample: Sample) -> str | None:
        if not self.trace_url or not sample.request_ids:
            return None
        return self.trace_url.format(request_id=sample.request_ids[-1], trace_id=sample.trace_id)


def write_reports(
    data: ReportData,
    *,
    markdown: Path | None = None,
    html: Path | None = None,
    junit: Path | None = None,
    json: Path | None = None,
) -> list[Path]:
    """Write the requested reports; returns the paths written."""
    from pilothouse.evals.reports import html as html_report
    from pilothouse.evals.reports import json_report, junit_report, markdown_report

    written = []
    for path, render in (
        (markdown, markdown_report.render),
        (html, html_report.render),
        (junit, junit_report.render),
    ):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(data), encoding="utf-8")
            written.append(path)
    if json is not None:
        document = json_report.run_json(data.record, data.summary, data.gates, data.problems)
        json_report.write_json(json, document)
        written.append(json)
    return written
