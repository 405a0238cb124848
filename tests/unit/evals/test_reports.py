"""Reports: valid JUnit XML, a PR-sized Markdown, a self-contained HTML, a round-tripping JSON."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import msgspec
import pytest

from pilothouse.evals.analysis import summarise
from pilothouse.evals.errors import EvalError
from pilothouse.evals.gates import evaluate_gates, exit_code
from pilothouse.evals.model import Case, RunRecord, Sample, Verdict
from pilothouse.evals.reports import ReportData, junit_report, markdown_report, write_reports
from pilothouse.evals.reports import html as html_report
from pilothouse.evals.reports.json_report import load_run_json
from pilothouse.evals.suite import GateSpec
from tests.unit.evals.evalkit import record, verdict


def gates() -> list[GateSpec]:
    return [
        msgspec.convert({"metric": "exact.pass_rate", "min": 0.9}, GateSpec),
        msgspec.convert(
            {"metric": "exact.pass_rate", "max_drop": 0.02, "vs": "baseline"}, GateSpec
        ),
    ]


def mixed_run() -> RunRecord:
    run = record({"q1": [True], "q2": [False], "q3": [True], "q4": [None]})
    run.info.scorers = ["exact", "judge"]
    run.cases["q2"] = Case(id="q2", input="<script>alert(1)</script>", expected="Paris")
    by_id = {s.case_id: s for s in run.samples}
    by_id["q1"].request_ids = ["req_aaa"]
    by_id["q1"].trace_id = "0af7651916cd43dd8448eb211c80319c"
    by_id["q1"].verdicts.append(verdict("judge", True, value=5.0, explanation="fine"))
    by_id["q2"].output = "Lyon \x00\x1b[31m <b>bold</b>"
    by_id["q2"].verdicts = [
        Verdict(
            scorer="exact",
            passed=False,
            value=0.0,
            expected="Paris",
            explanation="expected 'Paris', got 'Lyon'",
        ),
        Verdict(scorer="judge", skipped="not applicable"),
    ]
    by_id["q3"].verdicts.append(Verdict(scorer="judge", error="judge output is not a JSON object"))
    run.samples.append(Sample(case_id="q5", error="local: HTTP 502: upstream failed"))
    run.cases["q5"] = Case(id="q5", input="q")
    run.info.n_cases = 5
    return run


def report_data(run: RunRecord, baseline: RunRecord | None = None) -> ReportData:
    summary = summarise(run, baseline)
    results = evaluate_gates(gates(), run, summary, baseline)
    return ReportData(
        run,
        summary,
        results,
        [],
        exit_code(results, complete=True),
        "https://console.example/traces/{request_id}",
    )


def test_junit_is_valid_xml_with_one_testcase_per_case_and_scorer() -> None:
    data = report_data(mixed_run())
    root = ET.fromstring(junit_report.render(data))  # control characters removed: parses
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"s.gates", "s.exact", "s.judge"}
    for suite in suites.values():
        cases = suite.findall("testcase")
        assert int(suite.get("tests", "-1")) == len(cases)
        for kind in ("failure", "error", "skipped"):
            assert int(suite.get(kind + "s" if kind != "skipped" else kind, "-1")) == sum(
                1 for c in cases if c.find(kind) is not None
            )
    assert int(root.get("tests", "-1")) == sum(int(s.get("tests", "0")) for s in suites.values())
    exact = {c.get("name"): c for c in suites["s.exact"].findall("testcase")}
    assert set(exact) == {"q1", "q2", "q3", "q4", "q5"}
    failure = exact["q2"].find("failure")
    assert failure is not None and failure.get("message") == "expected 'Paris', got 'Lyon'"
    assert "expected: Paris\ngot: Lyon" in (failure.text or "")
    target_error = exact["q5"].find("error")
    assert target_error is not None and target_error.get("type") == "target_error"
    assert exact["q4"].find("error") is not None  # scorer error, not a failure
    judge = {c.get("name"): c for c in suites["s.judge"].findall("testcase")}
    assert judge["q2"].find("skipped") is not None
    assert "request_id: req_aaa" in (exact["q1"].findtext("system-out") or "")
    gate_cases = suites["s.gates"].findall("testcase")
    assert gate_cases[0].find("failure") is not None  # 0.5 < 0.9
    assert gate_cases[1].find("skipped") is not None  # no baseline


def test_markdown_tells_the_decision_and_the_evidence() -> None:
    base = record({"q1": [True], "q2": [True], "q3": [True], "q4": [True]})
    text = markdown_report.render(report_data(mixed_run(), base))
    assert text.startswith("## ❌ s: 1 of 2 gates failed")
    assert "| ❌ | `exact.pass_rate >= 0.9` |" in text
    assert "### Compared with" in text
    assert "| `exact.pass_rate` | 1.000 | 0.667 | -0.333 |" in text  # q4 errored: 3 pairs
    assert "now failing: `q2`" in text
    assert "| `q2` | exact | Paris | expected 'Paris', got 'Lyon' |" in text
    assert "| `q5` | (target) |" in text


def test_markdown_stays_within_a_pull_request_comment() -> None:
    big = record(
        {f"case-{i:05d}-" + "x" * 40: [i % 2 == 0] for i in range(3000)},
        metadata={f"case-{i:05d}-" + "x" * 40: {"topic": f"t{i}"} for i in range(3000)},
    )
    text = markdown_report.render(report_data(big))
    assert len(text) < 65_536
    assert text.endswith("(truncated; see the HTML or JSON report)\n")


def test_html_is_self_contained_escaped_and_links_traces() -> None:
    base = record({"q1": [True], "q2": [True], "q3": [True], "q4": [True]})
    page = html_report.render(report_data(mixed_run(), base))
    assert page.startswith("<!doctype html>")
    assert page.count("<svg") == 2  # metric bars + comparison forest plot
    assert (
        "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    )
    assert "<b>bold</b>" not in page
    assert '<a href="https://console.example/traces/req_aaa"><code>req_aaa</code></a>' in page
    assert "0af7651916cd43dd8448eb211c80319c" in page
    assert "judge output is not a JSON object" in page
    assert not re.search(r"<(script|link|img)\b", page)  # no scripts, stylesheets or images


def test_json_report_round_trips_as_a_baseline(tmp_path: Path) -> None:
    run = mixed_run()
    data = report_data(run)
    written = write_reports(
        data,
        json=tmp_path / "out" / "run.json",
        markdown=tmp_path / "r.md",
        html=tmp_path / "r.html",
        junit=tmp_path / "j.xml",
    )
    assert [p.name for p in written] == ["r.md", "r.html", "j.xml", "run.json"]
    loaded = load_run_json(tmp_path / "out" / "run.json")
    assert loaded.info.id == run.info.id
    assert loaded.cases == run.cases
    assert sorted(msgspec.to_builtins(loaded.samples), key=str) == sorted(
        msgspec.to_builtins(run.samples), key=str
    )
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(EvalError, match="not a pilothouse eval JSON report"):
        load_run_json(tmp_path / "other.json")


def test_html_case_names_the_scorer_that_failed_or_errored() -> None:
    page = html_report.render(report_data(mixed_run()))
    summaries = dict(re.findall(r'id="case-(q\d)">\s*<summary>(.*?)</summary>', page, re.S))
    assert "failed: exact" in summaries["q2"] and "judge" not in summaries["q2"].split("failed:")[1]
    assert "error: judge" in summaries["q3"] and "failed:" not in summaries["q3"]
    assert "failed:" not in summaries["q1"] and "error:" not in summaries["q1"]


def test_gate_detail_reads_as_a_sentence() -> None:
    page = html_report.render(report_data(mixed_run()))
    assert "below the minimum 0.9" in page
    assert "misses" not in page and "meets" not in page
