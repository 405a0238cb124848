"""Built-in scorers: what passes, what fails, what is not applicable, and why."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pilothouse.evals.errors import SuiteError
from pilothouse.evals.model import Verdict
from pilothouse.evals.scorers.base import (
    ScoreContext,
    Scorer,
    ScorerConfig,
    build_scorer,
    register_scorer,
    scorer_types,
)
from pilothouse.evals.scorers.text import normalise, numbers_in
from tests.unit.evals.evalkit import case

Make = Callable[..., Scorer[Any]]
CTX = ScoreContext()


async def score(scorer: Scorer[Any], output: str, **case_kw: Any) -> Verdict:
    return await scorer.evaluate(case(**case_kw), output, CTX)


def test_normalise_ignores_case_whitespace_and_punctuation() -> None:
    assert normalise("  The  Eiffel-Tower!\n") == "the eiffel tower"
    assert normalise("\uff30\uff21\uff32\uff29\uff33.") == "paris"  # full-width letters (NFKC)


async def test_exact(make_scorer: Make) -> None:
    exact = make_scorer(type="exact")
    assert (await score(exact, "Paris.", expected="paris")).passed is True
    failed = await score(exact, "It is Paris", expected="Paris")
    assert failed.passed is False
    assert failed.explanation == "expected 'Paris', got 'It is Paris'"
    assert (await score(exact, "Lyon", expected=["Paris", "Lyon"])).passed is True
    assert (await score(exact, "42", expected=42)).passed is True
    assert (await score(exact, "x")).skipped == "the case has no textual `expected`"
    assert (await score(exact, "x", expected={"a": 1})).skipped is not None


async def test_contains_any_and_all(make_scorer: Make) -> None:
    contains = make_scorer(type="contains")
    assert (await score(contains, "The capital is PARIS.", expected="paris")).passed
    assert not (await score(contains, "Lyon", expected="Paris")).passed
    both = make_scorer(type="contains", mode="all", name="both")
    verdict = await score(both, "red and blue", expected=["red", "green"])
    assert verdict.passed is False
    assert "missing 'green'" in verdict.explanation
    assert verdict.scorer == "both"


async def test_regex_match_and_negate(make_scorer: Make) -> None:
    year = make_scorer(type="regex", pattern=r"\d{4}")
    assert (await score(year, "It was 1969.")).explanation == "matched '1969'"
    assert (await score(year, "long ago")).passed is False
    no_sorry = make_scorer(type="regex", pattern="sorry", ignore_case=True, negate=True)
    assert (await score(no_sorry, "Here you go")).passed is True
    refused = await score(no_sorry, "Sorry, I cannot")
    assert refused.passed is False and "found 'Sorry'" in refused.explanation


def test_regex_is_validated_when_the_suite_loads(make_scorer: Make) -> None:
    with pytest.raises(SuiteError, match="invalid regex"):
        make_scorer(type="regex", pattern="(unclosed")


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("12 + 7 = 19.", ["12", "7", "19"]),
        ("It costs $1,234.50 today", ["1234.50"]),
        ("-3 degrees, then 5-2", ["-3", "5", "2"]),
        ("v2 and 3rd are not numbers", []),
    ],
)
def test_numbers_in_text(text: str, numbers: list[str]) -> None:
    assert [str(n) for n in numbers_in(text)] == numbers


async def test_numeric(make_scorer: Make) -> None:
    numeric = make_scorer(type="numeric", tolerance=0.01)
    assert (await score(numeric, "12 + 7 = 19", expected=19)).passed
    assert (await score(numeric, "about 3.141", expected="3.14")).passed is True
    wrong = await score(numeric, "12 + 7 = 9", expected=19)
    assert wrong.passed is False and wrong.explanation == "expected 19 (±0.01), got 9"
    assert (await score(numeric, "no idea", expected=19)).explanation == "no number in 'no idea'"
    assert (await score(numeric, "19", expected="Paris")).skipped is not None
    first = make_scorer(type="numeric", pick="first", name="first")
    assert (await score(first, "19, not 20", expected=19)).passed
    relative = make_scorer(type="numeric", tolerance=0.1, relative=True, name="rel")
    assert (await score(relative, "1050", expected=1000)).passed
    assert not (await score(relative, "1200", expected=1000)).passed


async def test_json_schema_and_expected_fields(make_scorer: Make) -> None:
    schema = {
        "type": "object",
        "required": ["name", "age"],
        "properties": {"age": {"type": "integer"}},
    }
    scorer = make_scorer(type="json_schema", schema=schema, match_expected=True)
    good = await score(
        scorer,
        'Sure: ```json\n{"name": "maria", "age": 34}\n```',
        expected={"name": "Maria", "age": 34},
    )
    assert good.passed is True and good.value == 1.0 and "code fence" in good.explanation
    half = await score(
        scorer, '{"name": "Mario", "age": 34}', expected={"name": "Maria", "age": 34}
    )
    assert half.passed is False and half.value == 0.5
    assert "name: expected 'Maria', got 'Mario'" in half.explanation
    bad_type = await score(scorer, '{"name": "Maria", "age": "34"}')
    assert bad_type.passed is False and "schema violation at age" in bad_type.explanation
    assert (await score(scorer, "no json here")).passed is False
    as_text = await score(scorer, '{"name": "Maria", "age": "34"}', expected={"age": 34})
    assert as_text.passed is False  # the schema says integer...
    lenient = make_scorer(type="json_schema", match_expected=True, name="fields")
    assert (await score(lenient, '{"age": "34"}', expected={"age": 34})).passed  # ...fields agree
    strict = make_scorer(type="json_schema", extract=False, name="strict")
    assert (await score(strict, 'text {"a": 1}')).passed is False


def test_json_schema_rejects_an_invalid_schema(make_scorer: Make) -> None:
    with pytest.raises(SuiteError, match="invalid JSON schema"):
        make_scorer(type="json_schema", schema={"type": "no-such-type"})


async def test_grounded(make_scorer: Make) -> None:
    grounded = make_scorer(type="grounded")
    context = "Apollo 11 landed on the Moon on 20 July 1969. Neil Armstrong walked first."
    ok = await score(grounded, "Apollo 11 landed on the Moon in 1969.", context=context)
    assert ok.passed is True and ok.value == 1.0
    invented = await score(
        grounded,
        "Apollo 11 landed on the Moon in 1972. It carried five astronauts to Mars.",
        context=context,
    )
    assert invented.passed is False and invented.value == 0.0
    assert "0/2 sentences supported" in invented.explanation
    mixed = await score(
        grounded,
        "Neil Armstrong walked first. Pizza was served.",
        context=[context, "Something else."],
    )
    assert mixed.value == 0.5
    assert (await score(grounded, "anything")).skipped == "the case has no `context`"


async def test_when_restricts_a_scorer_to_matching_cases(make_scorer: Make) -> None:
    scorer = make_scorer(type="exact", when={"metadata.task": ["qa", "trivia"]})
    assert scorer.applies(case(metadata={"task": "qa"}))
    assert not scorer.applies(case(metadata={"task": "math"}))
    assert not scorer.applies(case())


def test_python_scorer_variants(tmp_path: Path) -> None:
    (tmp_path / "my_scorers.py").write_text(
        "import asyncio\n"
        "def no_apology(output):\n    return 'sorry' not in output.lower()\n"
        "def by_name(output, expected, metadata):\n"
        "    return {'value': 0.25, 'explanation': f'{expected}/{metadata}'}\n"
        "async def slow(case, output):\n    await asyncio.sleep(0)\n    return 0.75\n"
        "def broken(output):\n    raise RuntimeError('boom')\n"
        "def nothing(output):\n    return None\n"
        "def weird(output):\n    return [1]\n"
    )

    async def run(ref: str) -> Verdict:
        scorer = build_scorer({"type": "python", "ref": ref}, tmp_path, "t")
        return await scorer.evaluate(case(expected="E", metadata={"k": 1}), "I'm sorry", CTX)

    import asyncio

    assert asyncio.run(run("my_scorers:no_apology")).passed is False
    named = asyncio.run(run("my_scorers:by_name"))
    assert (named.value, named.passed, named.explanation) == (0.25, False, "E/{'k': 1}")
    assert asyncio.run(run("my_scorers:slow")).passed is True
    assert (
        asyncio.run(run("my_scorers:broken")).error == "my_scorers:broken raised RuntimeError: boom"
    )
    assert asyncio.run(run("my_scorers:nothing")).skipped is not None
    assert "returned list" in (asyncio.run(run("my_scorers:weird")).error or "")
    with pytest.raises(SuiteError, match="has no attribute 'missing'"):
        build_scorer({"type": "python", "ref": "my_scorers:missing"}, tmp_path, "t")
    with pytest.raises(SuiteError, match="must look like 'module:function'"):
        build_scorer({"type": "python", "ref": "my_scorers"}, tmp_path, "t")


def test_same_named_modules_in_two_suites_do_not_shadow_each_other(tmp_path: Path) -> None:
    import asyncio

    results = []
    for folder, word in (("a", "alpha"), ("b", "beta")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "my_scorers.py").write_text(
            f"def check(output):\n    return output == {word!r}\n"
        )
        scorer = build_scorer({"type": "python", "ref": "my_scorers:check"}, tmp_path / folder, "t")
        results.append(asyncio.run(scorer.evaluate(case(), "alpha", CTX)).passed)
    assert results == [True, False]


def test_unknown_type_and_options_fail_with_the_location(make_scorer: Make) -> None:
    with pytest.raises(SuiteError, match="unknown scorer type 'exactly'"):
        make_scorer(type="exactly")
    with pytest.raises(SuiteError, match="unknown field `tolerence`"):
        make_scorer(type="numeric", tolerence=0.1)


class ShoutConfig(ScorerConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class ShoutScorer(Scorer[ShoutConfig]):
    config_type = ShoutConfig

    async def evaluate(self, case: Any, output: str, ctx: ScoreContext) -> Verdict:
        return self.verdict(output.isupper())


async def test_plugins_register_by_name_and_by_entry_point(
    make_scorer: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_scorer("shout", ShoutScorer)
    assert (await score(make_scorer(type="shout"), "HI")).passed is True

    class EntryPoint:
        name, value = "loud", f"{__name__}:ShoutScorer"

    import pilothouse.evals.scorers.base as base

    monkeypatch.setattr(base, "entry_points", lambda group: [EntryPoint] if group else [])
    assert scorer_types()["loud"].endswith(":ShoutScorer")
    assert (await score(make_scorer(type="loud"), "quiet")).passed is False
