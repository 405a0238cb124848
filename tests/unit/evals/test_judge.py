"""Judges: strict parsing (bad output is a recorded error), versioned prompts, caching."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pilothouse.evals.errors import EvalError, ScoreError, SuiteError, TargetUnavailable
from pilothouse.evals.scorers.base import ChatReply, ScoreContext, Scorer
from pilothouse.evals.scorers.judge import parse_verdict
from pilothouse.evals.scoring import score_output
from tests.unit.evals.evalkit import FakeJudge, case

Make = Callable[..., Scorer[Any]]
JUDGE = {
    "type": "judge",
    "model": "local",
    "rubric": "Is it correct?",
    "scale": [1, 5],
    "pass_at": 4,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"score": 4, "reason": "good"}', (4, "good")),
        ('  {"score": 5.0}  ', (5, "")),
        ('```json\n{"score": 1, "reason": "wrong"}\n```', (1, "wrong")),
    ],
)
def test_parse_verdict_accepts_one_json_object(text: str, expected: tuple[int, str]) -> None:
    assert parse_verdict(text, 1, 5) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("I would give it a 4.", "not a JSON object"),
        ('Score: {"score": 4}', "not a JSON object"),
        ("[4]", "JSON but not an object"),
        ('{"rating": 4}', "no integer `score`"),
        ('{"score": "4"}', "no integer `score`"),
        ('{"score": true}', "no integer `score`"),
        ('{"score": 4.5}', "no integer `score`"),
        ('{"score": 7}', "outside the scale 1..5"),
        ('{"score": 0}', "outside the scale 1..5"),
        ('{"score": 3, "reason": 12}', "`reason` must be a string"),
        ("", "not a JSON object"),
    ],
)
def test_parse_verdict_rejects_everything_else(text: str, message: str) -> None:
    with pytest.raises(ScoreError, match=message):
        parse_verdict(text, 1, 5)


async def test_a_good_judge_answer_is_a_score(make_scorer: Make) -> None:
    judge = make_scorer(**JUDGE)
    fake = FakeJudge('{"score": 4, "reason": "correct and polite"}')
    verdict = await judge.evaluate(case(expected="Paris"), "Paris.", fake.context())
    assert (verdict.value, verdict.passed, verdict.label) == (4.0, True, "pass")
    assert verdict.explanation == "4/5: correct and polite"
    assert verdict.detail["prompt"] == "rubric@1"
    assert verdict.detail["request_ids"] == ["req_judge_1"]
    model, messages, params = fake.calls[0]
    assert model == "local"
    assert "Is it correct?" in messages[-1]["content"]
    assert "REFERENCE ANSWER" in messages[-1]["content"] and "Paris." in messages[-1]["content"]
    assert params["response_format"]["json_schema"]["schema"]["properties"]["score"]["enum"] == [
        1,
        2,
        3,
        4,
        5,
    ]
    assert params["temperature"] == 0.0


async def test_bad_judge_output_is_a_recorded_error_not_a_zero(make_scorer: Make) -> None:
    judge = make_scorer(**JUDGE)
    fake = FakeJudge("Great answer, 5 stars!")
    verdict = await judge.evaluate(case(), "Paris", fake.context())
    assert verdict.value is None and verdict.passed is None
    assert verdict.error is not None and "not a JSON object" in verdict.error
    assert verdict.detail["raw"] == ["Great answer, 5 stars!"]
    assert not verdict.scored


async def test_failed_judge_calls_are_errors_but_an_unreachable_judge_stops_the_run(
    make_scorer: Make,
) -> None:
    judge = make_scorer(**JUDGE)

    async def flaky(model: str, messages: Any, params: Any) -> ChatReply:
        raise EvalError("local: HTTP 502: upstream failed")

    verdict = await judge.evaluate(case(), "x", ScoreContext(chat=flaky))
    assert verdict.error == "judge call failed: local: HTTP 502: upstream failed"

    async def down(model: str, messages: Any, params: Any) -> ChatReply:
        raise TargetUnavailable("gateway does not serve 'local'")

    with pytest.raises(TargetUnavailable):
        await score_output([judge], case(), "x", ScoreContext(chat=down))
    assert (await judge.evaluate(case(), "x", ScoreContext())).error is not None


async def test_several_samples_take_the_median_and_flag_disagreement(make_scorer: Make) -> None:
    judge = make_scorer(**JUDGE, samples=3, temperature=0.7, name="j3")
    fake = FakeJudge('{"score": 5}', '{"score": 2}', '{"score": 4}')
    verdict = await judge.evaluate(case(), "x", fake.context())
    assert verdict.value == 4.0 and verdict.passed is True
    assert verdict.detail["scores"] == [5, 2, 4]
    assert verdict.detail["unanimous"] is False
    assert len(fake.calls) == 3


def test_judge_options_are_validated(make_scorer: Make) -> None:
    with pytest.raises(SuiteError, match="pass_at 6 is outside the scale"):
        make_scorer(**{**JUDGE, "pass_at": 6})
    with pytest.raises(SuiteError, match="samples > 1 needs temperature > 0"):
        make_scorer(**JUDGE, samples=2)
    with pytest.raises(SuiteError, match="unknown judge prompt 'rubric@9'"):
        make_scorer(**JUDGE, prompt="rubric@9")


async def test_a_prompt_file_is_versioned_by_its_content(tmp_path: Path) -> None:
    from pilothouse.evals.scorers.base import build_scorer

    (tmp_path / "strict.j2").write_text("Rubric: {{ rubric }}\nAnswer: {{ output }}\nJSON only.")
    judge = build_scorer({**JUDGE, "prompt": "file:strict.j2"}, tmp_path, "t")
    fake = FakeJudge('{"score": 2, "reason": "meh"}')
    verdict = await judge.evaluate(case(), "Lyon", fake.context())
    assert verdict.detail["prompt"].startswith("file:strict.j2#")
    assert fake.calls[0][1] == [
        {"role": "user", "content": "Rubric: Is it correct?\nAnswer: Lyon\nJSON only."}
    ]
    assert verdict.passed is False


async def test_cached_judge_answers_are_reused_without_a_call(make_scorer: Make) -> None:
    judge = make_scorer(**JUDGE)
    store: dict[str, dict[str, Any]] = {}

    async def get(key: str) -> dict[str, Any] | None:
        return store.get(key)

    def put(key: str, value: dict[str, Any]) -> None:
        store[key] = value

    fake = FakeJudge('{"score": 5, "reason": "ok"}')
    first = await judge.evaluate(
        case(), "Paris", ScoreContext(chat=fake, cache_get=get, cache_put=put)
    )
    second = await judge.evaluate(
        case(), "Paris", ScoreContext(chat=fake, cache_get=get, cache_put=put)
    )
    assert len(fake.calls) == 1
    assert first.value == second.value == 5.0
    assert second.detail["cached_request_ids"] == ["req_judge_1"]
    assert "request_ids" not in second.detail  # no spend this time
