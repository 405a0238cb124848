"""Helpers for the eval unit tests: cases, records and a scripted judge."""

from __future__ import annotations

from typing import Any

from pilothouse.evals.model import Case, RunInfo, RunRecord, Sample, Verdict
from pilothouse.evals.scorers.base import ChatReply, ScoreContext


def case(id: str = "c1", **kw: Any) -> Case:
    return Case(id=id, input=kw.pop("input", "question?"), **kw)


class FakeJudge:
    """A stand-in for the gateway: answers judge prompts with scripted texts."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = []

    async def __call__(
        self, model: str, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> ChatReply:
        self.calls.append((model, messages, params))
        text = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return ChatReply(text=text, request_id=f"req_judge_{len(self.calls)}")

    def context(self) -> ScoreContext:
        return ScoreContext(chat=self)


def verdict(scorer: str, passed: bool | None, value: float | None = None, **kw: Any) -> Verdict:
    if passed is None:
        return Verdict(scorer=scorer, **kw)
    return Verdict(
        scorer=scorer, passed=passed, value=float(passed) if value is None else value, **kw
    )


def record(
    results: dict[str, list[bool | None]],
    *,
    scorer: str = "exact",
    metadata: dict[str, dict[str, Any]] | None = None,
    repeats: int = 1,
    run_id: str = "run_test",
) -> RunRecord:
    """A run where each case's repeats passed (True), failed (False) or errored (None)."""
    cases = {
        cid: Case(id=cid, input="q", metadata=(metadata or {}).get(cid, {})) for cid in results
    }
    samples = []
    for cid, outcomes in results.items():
        for r, passed in enumerate(outcomes):
            v = verdict(scorer, passed, error=None if passed is not None else "judge broke")
            samples.append(Sample(case_id=cid, repeat=r, output="o", verdicts=[v], cost_pico=5))
    info = RunInfo(
        id=run_id,
        suite="s",
        scorers=[scorer],
        repeats=repeats,
        n_cases=len(cases),
        slices=["metadata.topic"] if metadata else [],
    )
    return RunRecord(info=info, cases=cases, samples=samples)
