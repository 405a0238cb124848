"""Review queue selection and labels, and judge calibration maths."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from pilothouse.evals.calibrate import calibrate, load_labels
from pilothouse.evals.errors import EvalError
from pilothouse.evals.model import Case, RunInfo, RunRecord, Sample, Verdict
from pilothouse.evals.review import (
    enqueue_review,
    export_labels,
    label_item,
    next_item,
    normalise_label,
    pending_count,
    select_for_review,
)
from pilothouse.evals.store import EvalStore
from pilothouse.evals.suite import Suite, load_suite
from pilothouse.store.db import create_engine, migrate
from tests.unit.evals.evalkit import FakeJudge

SUITE = """
name: judged
target: {model: local}
dataset:
  - {id: a, input: "Capital of France?", expected: Paris}
  - {id: b, input: "Capital of Italy?", expected: Rome}
  - {id: c, input: "Capital of Spain?", expected: Madrid}
  - {id: d, input: "Capital of Peru?", expected: Lima}
scorers:
  - {type: judge, model: local, rubric: "Correct?", scale: [1, 5], pass_at: 4}
  - {type: judge, model: local, rubric: "Polite?", name: polite}
  - {type: exact}
review: {sample_rate: 0.0}
"""


@pytest.fixture
def suite(tmp_path: Path) -> Suite:
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE)
    return load_suite(path)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EvalStore]:
    engine = create_engine(f"sqlite:///{tmp_path / 'evals.db'}")
    await migrate(engine)
    yield EvalStore(engine)
    await engine.dispose()


def judged(
    value: float | None, pass_at: int = 4, scorer: str = "judge", **detail: object
) -> Verdict:
    if value is None:
        return Verdict(scorer=scorer, error="judge output is not a JSON object")
    return Verdict(
        scorer=scorer, value=value, passed=value >= pass_at, detail={"scale": [1, 5], **detail}
    )


def run_of(samples: dict[str, list[Verdict]]) -> RunRecord:
    cases = {cid: Case(id=cid, input="q") for cid in samples}
    info = RunInfo(id="run_review", suite="judged", scorers=["judge", "polite", "exact"])
    return RunRecord(
        info=info,
        cases=cases,
        samples=[Sample(case_id=c, output=f"out-{c}", verdicts=v) for c, v in samples.items()],
    )


def test_review_selects_errors_borderline_disagreement_and_uncertain(suite: Suite) -> None:
    record = run_of(
        {
            "a": [judged(5), judged(5, pass_at=5, scorer="polite")],  # confident: not queued
            "b": [judged(None)],  # judge error
            "c": [judged(4), judged(1, pass_at=5, scorer="polite")],  # judges disagree
            "d": [judged(3), judged(5, pass_at=5, scorer="polite", unanimous=False)],
        }
    )
    chosen = {(s.case_id, v.scorer): reason for s, v, reason in select_for_review(record, suite)}
    assert chosen == {
        ("b", "judge"): "judge_error",
        ("c", "judge"): "disagreement",
        ("c", "polite"): "disagreement",
        ("d", "judge"): "disagreement",
        ("d", "polite"): "disagreement",
    }
    record.samples[3].verdicts = [judged(3)]
    assert ("d", "judge", "borderline") in {
        (s.case_id, v.scorer, r) for s, v, r in select_for_review(record, suite)
    }
    record.samples[3].verdicts = [judged(5, scores=[5, 1], unanimous=False)]
    assert [r for s, _v, r in select_for_review(record, suite) if s.case_id == "d"] == ["uncertain"]


async def test_queue_label_and_export_feed_calibration(
    store: EvalStore, suite: Suite, tmp_path: Path
) -> None:
    record = run_of({"a": [judged(None)], "b": [judged(4)], "c": [judged(5)]})
    assert await enqueue_review(store, record, suite) == 2  # error + borderline
    assert await enqueue_review(store, record, suite) == 0  # idempotent (resumed runs)
    assert await pending_count(store) == 2
    first = await next_item(store)
    assert first is not None and first.case_id == "a" and first.reason == "judge_error"
    assert first.payload["output"] == "out-a"
    labelled = await label_item(store, first.id, "yes", note="looks right")
    assert (labelled.status, labelled.label) == ("labelled", "pass")
    second = await next_item(store, "run_review")
    assert second is not None and second.case_id == "b"
    with pytest.raises(EvalError, match="outside the judge scale"):
        await label_item(store, second.id, "9")
    await label_item(store, second.id, "2")
    assert await next_item(store) is None
    rows = await export_labels(store)
    assert [(r["id"], r["label"], r["output"], r["scorer"]) for r in rows] == [
        ("a", "pass", "out-a", "judge"),
        ("b", "2", "out-b", "judge"),
    ]
    labels = tmp_path / "human.jsonl"
    labels.write_text("".join(orjson.dumps(r).decode() + "\n" for r in rows))
    loaded = load_labels(labels)
    assert [x.label for x in loaded] == ["pass", "2"]


@pytest.mark.parametrize(("raw", "label"), [("PASS", "pass"), ("no", "fail"), (" 3 ", "3")])
def test_labels_are_normalised(raw: str, label: str) -> None:
    assert normalise_label(raw, [1, 5]) == label
    with pytest.raises(EvalError):
        normalise_label("maybe")


async def test_calibration_agreement_kappa_confusion_and_disagreements(
    suite: Suite, tmp_path: Path
) -> None:
    # Human: a pass, b pass, c fail, d fail, plus an unknown case; judge: 5, 2, 1, 4, (error).
    rows = [
        {"id": "a", "output": "Paris", "label": "pass"},
        {"id": "b", "output": "Rome", "label": 5},
        {"id": "c", "output": "Barcelona", "label": "fail"},
        {"id": "d", "output": "Cusco", "label": 1},
        {"id": "zz", "output": "?", "label": "pass"},
        {"id": "a", "output": "Paris!", "label": "pass", "scorer": "polite"},
    ]
    path = tmp_path / "human.jsonl"
    path.write_text("".join(orjson.dumps(r).decode() + "\n" for r in rows))
    judge = FakeJudge(
        '{"score": 5, "reason": "right"}',
        '{"score": 2, "reason": "wrong"}',
        '{"score": 1, "reason": "wrong"}',
        '{"score": 4, "reason": "close"}',
    )
    results = await calibrate(suite, load_labels(path), judge.context(), scorer="judge")
    cal = results[0]
    assert cal.n == 4 and cal.unknown_cases == ["zz"]
    # rows human (pass, fail) x cols judge (pass, fail): a pass/pass, b pass/fail, c fail/fail,
    # d fail/pass.
    assert cal.matrix == [[1, 1], [1, 1]]
    assert cal.agreement == 0.5 and cal.kappa == pytest.approx(0.0)
    assert sorted(d["id"] for d in cal.disagreements) == ["b", "d"]
    # Score-level: (human 5, judge 2), (human 1, judge 4).
    assert cal.score_labels == ["1", "2", "4", "5"]
    assert cal.score_matrix[3][1] == 1 and cal.score_matrix[0][2] == 1


async def test_calibration_counts_judge_errors_apart(suite: Suite, tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(
        '{"id": "a", "output": "Paris", "label": "pass"}\n'
        '{"id": "b", "output": "Rome", "label": "pass"}\n'
    )
    judge = FakeJudge("five stars", '{"score": 5}')
    cal = (await calibrate(suite, load_labels(path), judge.context(), scorer="judge"))[0]
    assert cal.n == 1 and len(cal.judge_errors) == 1
    assert "not a JSON object" in cal.judge_errors[0]["error"]
    assert cal.kappa is None  # a single label on both sides: undefined, not 0 or 1
    with pytest.raises(EvalError, match="has no scorer 'nope'"):
        await calibrate(suite, load_labels(path), judge.context(), scorer="nope")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "label": "pass"}\n')
    with pytest.raises(EvalError, match="needs the labelled `output`"):
        load_labels(bad)
