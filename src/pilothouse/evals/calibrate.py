"""Judge calibration: how often does the judge agree with people, beyond chance?

Input is a JSONL of human labels (``{"id", "output", "label", "scorer"?}``,
exactly what ``pilothouse review export`` writes); the suite's judge scores
the same outputs again, and the two are compared: raw agreement, Cohen's
kappa, the confusion matrix (human rows, judge columns) and every
disagreement. Judge errors are listed apart: they are neither agreement nor
disagreement.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from pilothouse.evals.errors import EvalError
from pilothouse.evals.model import Verdict
from pilothouse.evals.review import normalise_label
from pilothouse.evals.scorers.base import ScoreContext, Scorer
from pilothouse.evals.stats import cohen_kappa, confusion_matrix
from pilothouse.evals.suite import Suite

BINARY = ("pass", "fail")


@dataclass(frozen=True, slots=True)
class HumanLabel:
    id: str
    label: str
    output: str
    scorer: str | None = None


@dataclass(slots=True)
class Calibration:
    scorer: str
    n: int = 0
    agreement: float | None = None
    kappa: float | None = None
    matrix: list[list[int]] = field(default_factory=list)
    score_labels: list[str] = field(default_factory=list)
    score_matrix: list[list[int]] = field(default_factory=list)
    score_kappa: float | None = None
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    judge_errors: list[dict[str, Any]] = field(default_factory=list)
    unknown_cases: list[str] = field(default_factory=list)


def load_labels(path: Path) -> list[HumanLabel]:
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EvalError(f"{path}: cannot read labels: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise EvalError(f"{path}:{number}: invalid JSON: {exc}") from None
        if not isinstance(row, dict) or "id" not in row or "label" not in row:
            raise EvalError(f"{path}:{number}: a label row needs `id` and `label`")
        if not isinstance(row.get("output"), str):
            raise EvalError(f"{path}:{number}: a label row needs the labelled `output` text")
        label = normalise_label(str(row["label"]))
        rows.append(HumanLabel(str(row["id"]), label, row["output"], row.get("scorer")))
    if not rows:
        raise EvalError(f"{path}: no labels")
    return rows


def human_passed(label: str, pass_at: float | None) -> bool:
    if label in BINARY:
        return label == "pass"
    if pass_at is None:
        raise EvalError(f"numeric label {label!r} needs a judge with a scale")
    return int(label) >= pass_at


def pick_scorers(suite: Suite, name: str | None) -> list[Scorer[Any]]:
    if name is not None:
        found = [s for s in suite.scorers if s.name == name]
        if not found:
            raise EvalError(f"suite {suite.name!r} has no scorer {name!r}")
        return found
    judges = [s for s in suite.scorers if s.config.type == "judge"]
    if not judges:
        raise EvalError(f"suite {suite.name!r} has no judge scorer; name one with --scorer")
    return judges


async def calibrate(
    suite: Suite, labels: list[HumanLabel], ctx: ScoreContext, *, scorer: str | None = None
) -> list[Calibration]:
    """Re-score the labelled outputs with each chosen scorer and compare with the labels."""
    cases = {c.id: c for c in suite.cases}
    results = []
    limit = asyncio.Semaphore(suite.spec.concurrency)
    for chosen in pick_scorers(suite, scorer):
        rows = [r for r in labels if r.scorer in (None, chosen.name)]

        async def judge(row: HumanLabel, s: Scorer[Any] = chosen) -> Verdict | None:
            case = cases.get(row.id)
            if case is None:
                return None
            async with limit:
                return await s.evaluate(case, row.output, ctx)

        verdicts = await asyncio.gather(*(judge(r) for r in rows))
        results.append(compare(chosen, rows, list(verdicts)))
    return results


def compare(
    scorer: Scorer[Any], rows: list[HumanLabel], verdicts: list[Verdict | None]
) -> Calibration:
    out = Calibration(scorer.name)
    pass_at = getattr(scorer, "pass_at", None)
    human: list[str] = []
    judged: list[str] = []
    scores: list[tuple[str, str]] = []
    for row, verdict in zip(rows, verdicts, strict=True):
        if verdict is None:
            out.unknown_cases.append(row.id)
            continue
        if not verdict.scored:
            out.judge_errors.append({"id": row.id, "error": verdict.error or verdict.skipped})
            continue
        h = "pass" if human_passed(row.label, pass_at) else "fail"
        j = "pass" if verdict.passed else "fail"
        human.append(h)
        judged.append(j)
        if row.label not in BINARY and verdict.value is not None:
            scores.append((row.label, str(int(verdict.value))))
        if h != j:
            out.disagreements.append(
                {
                    "id": row.id,
                    "human": row.label,
                    "judge": verdict.label,
                    "judge_value": verdict.value,
                    "explanation": verdict.explanation,
                    "output": row.output,
                }
            )
    out.n = len(human)
    if out.n:
        out.matrix = confusion_matrix(human, judged, BINARY)
        out.agreement = sum(1 for a, b in zip(human, judged, strict=True) if a == b) / out.n
        out.kappa = cohen_kappa(out.matrix)
    if scores:
        values = sorted({int(v) for pair in scores for v in pair})
        out.score_labels = [str(v) for v in values]
        out.score_matrix = confusion_matrix(
            [a for a, _ in scores], [b for _, b in scores], out.score_labels
        )
        out.score_kappa = cohen_kappa(out.score_matrix)
    return out
