"""JUnit XML: one testsuite per scorer (plus one for the gates), one testcase per case.

CI systems show failures with their message, so each failure says
"expected X, got Y"; scorer and target errors are ``<error>`` (not failures),
and scorers that do not apply to a case are ``<skipped>``. Characters XML 1.0
forbids (model output can contain anything) are removed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter

from pilothouse.evals.model import Sample, Verdict
from pilothouse.evals.reports import ReportData
from pilothouse.evals.reports.text import sample_label

_INVALID_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(text: str, limit: int = 4000) -> str:
    text = _INVALID_XML.sub("", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _count(suite: ET.Element) -> None:
    kinds: Counter[str] = Counter()
    for case in suite.iter("testcase"):
        kinds["tests"] += 1
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                kinds[child.tag] += 1
                break
    suite.set("tests", str(kinds["tests"]))
    suite.set("failures", str(kinds["failure"]))
    suite.set("errors", str(kinds["error"]))
    suite.set("skipped", str(kinds["skipped"]))


def _testcase(parent: ET.Element, classname: str, name: str, seconds: float) -> ET.Element:
    return ET.SubElement(
        parent, "testcase", classname=classname, name=clean(name, 200), time=f"{seconds:.3f}"
    )


def _verdict_case(
    parent: ET.Element, classname: str, sample: Sample, verdict: Verdict | None, label: str
) -> None:
    case = _testcase(parent, classname, label, sample.latency_ms / 1000)
    if sample.error is not None:
        ET.SubElement(
            case, "error", message=clean(sample.error, 500), type="target_error"
        ).text = clean(sample.error)
    elif verdict is not None and verdict.error is not None:
        ET.SubElement(
            case, "error", message=clean(verdict.error, 500), type="score_error"
        ).text = clean(f"{verdict.error}\n\noutput:\n{sample.output or ''}")
    elif verdict is not None and verdict.skipped is not None:
        ET.SubElement(case, "skipped", message=clean(verdict.skipped, 500))
    elif verdict is not None and verdict.passed is False:
        expected = verdict.expected or "-"
        message = verdict.explanation or f"expected {expected}"
        body = f"expected: {expected}\ngot: {sample.output or ''}\n\n{verdict.explanation}"
        ET.SubElement(
            case, "failure", message=clean(message, 500), type=verdict.scorer
        ).text = clean(body)
    ids = " ".join(sample.request_ids)
    if ids:
        ET.SubElement(case, "system-out").text = clean(
            f"request_id: {ids}\ntrace_id: {sample.trace_id}"
        )


def _gate_suite(root: ET.Element, data: ReportData) -> None:
    name = f"{data.record.info.suite}.gates"
    suite = ET.SubElement(root, "testsuite", name=name, time="0")
    for gate in data.gates:
        case = _testcase(suite, name, gate.name, 0.0)
        if gate.status == "fail":
            ET.SubElement(case, "failure", message=clean(gate.detail, 500), type="gate")
        elif gate.status == "error":
            ET.SubElement(case, "error", message=clean(gate.detail, 500), type="gate")
        elif gate.status == "skipped":
            ET.SubElement(case, "skipped", message=clean(gate.detail, 500))
    for problem in data.problems:
        case = _testcase(suite, name, "run completed", 0.0)
        ET.SubElement(case, "error", message=clean(problem, 500), type="incomplete")
    _count(suite)


def render(data: ReportData) -> str:
    info = data.record.info
    root = ET.Element("testsuites", name=f"pilothouse eval: {info.suite}")
    stamp = info.started_at.strftime("%Y-%m-%dT%H:%M:%S") if info.started_at else ""
    if data.gates or data.problems:
        _gate_suite(root, data)
    samples = sorted(data.record.samples, key=lambda s: (s.case_id, s.repeat))
    for scorer in info.scorers:
        name = f"{info.suite}.{scorer}"
        suite = ET.SubElement(root, "testsuite", name=name, timestamp=stamp)
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="run_id", value=info.id)
        total = 0.0
        for sample in samples:
            verdict = sample.verdict(scorer)
            if verdict is None and sample.error is None:
                continue  # not selected for this case (`when`)
            total += sample.latency_ms / 1000
            label = sample_label(sample.case_id, sample.repeat, info.repeats)
            _verdict_case(suite, name, sample, verdict, label)
        suite.set("time", f"{total:.3f}")
        _count(suite)
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in root.iter("testsuite"))))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
