"""The JSON report: complete and machine-readable; also a valid ``--baseline``.

It holds the run, the statistics, the gates, and every case with every
sample and verdict, so a later run can be compared with it without access to
the store that produced it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import msgspec
import orjson

from pilothouse.evals.analysis import Summary, as_decimal
from pilothouse.evals.errors import EvalError
from pilothouse.evals.gates import GateResult
from pilothouse.evals.model import Case, RunInfo, RunRecord, Sample

SCHEMA = "pilothouse.eval.run/1"


def _stat_dicts(items: list[Any]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(item) for item in items]


def summary_json(summary: Summary, gates: list[GateResult], problems: list[str]) -> dict[str, Any]:
    totals = summary.totals
    cost = as_decimal(totals.cost_pico)
    return {
        "metrics": _stat_dicts(summary.metrics),
        "comparisons": _stat_dicts(summary.comparisons),
        "flaky": [{"scorer": f.scorer, "cases": [list(c) for c in f.cases]} for f in summary.flaky],
        "totals": {
            **dataclasses.asdict(totals),
            "error_rate": totals.error_rate,
            "cost_usd": None if cost is None else str(cost),
            "scoring_cost_usd": str(as_decimal(totals.scoring_cost_pico)),
        },
        "gates": [
            {
                "gate": msgspec.to_builtins(g.gate),
                "name": g.name,
                "status": g.status,
                "observed": g.observed,
                "detail": g.detail,
            }
            for g in gates
        ],
        "problems": problems,
    }


def run_json(
    record: RunRecord, summary: Summary, gates: list[GateResult], problems: list[str]
) -> dict[str, Any]:
    by_case = record.by_case()
    cases = [
        {
            "case": msgspec.to_builtins(record.cases[case_id]),
            "samples": [msgspec.to_builtins(s) for s in by_case.get(case_id, [])],
        }
        for case_id in record.cases
    ]
    return {
        "schema": SCHEMA,
        "run": msgspec.to_builtins(record.info),
        "summary": summary_json(summary, gates, problems),
        "cases": cases,
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))


def load_run_json(path: Path) -> RunRecord:
    """Read a JSON report back into a :class:`RunRecord` (for ``--baseline run.json``)."""
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise EvalError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise EvalError(f"{path}: not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise EvalError(f"{path}: not a pilothouse eval JSON report (schema {SCHEMA})")
    try:
        info = msgspec.convert(data["run"], RunInfo, strict=False)
        cases: dict[str, Case] = {}
        samples: list[Sample] = []
        for entry in data["cases"]:
            case = msgspec.convert(entry["case"], Case, strict=False)
            cases[case.id] = case
            samples += [msgspec.convert(s, Sample, strict=False) for s in entry["samples"]]
    except (KeyError, TypeError, msgspec.ValidationError) as exc:
        raise EvalError(f"{path}: malformed eval report: {exc}") from None
    return RunRecord(info=info, cases=cases, samples=samples)
