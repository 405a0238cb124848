"""Suite files and datasets: the issue's YAML as written, and precise errors for mistakes."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from pilothouse.evals.dataset import load_dataset
from pilothouse.evals.errors import SuiteError
from pilothouse.evals.suite import load_suite
from pilothouse.evals.targets import HttpTarget, ModelTarget, PythonTarget, render

EXAMPLE = Path(__file__).parents[3] / "examples" / "evals" / "support-qa"
# The suite from issue 5, verbatim (examples/evals/support-qa/suite.yaml).
ISSUE_SUITE = (EXAMPLE / "suite.yaml").read_text()
CASES = (
    '{"id": "q1", "input": "What is the capital of France?", "expected": "Paris", '
    '"metadata": {"topic": "geo"}}\n'
)


def write_suite(folder: Path, text: str, cases: str = CASES) -> Path:
    (folder / "cases.jsonl").write_text(cases)
    shutil.copy(EXAMPLE / "my_scorers.py", folder / "my_scorers.py")
    path = folder / "suite.yaml"
    path.write_text(text)
    return path


def test_the_issue_suite_loads_as_written(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path, ISSUE_SUITE))
    assert suite.name == "support-qa"
    assert isinstance(suite.target, ModelTarget) and suite.target.model == "local"
    assert [s.name for s in suite.scorers] == [
        "exact",
        "contains",
        "regex",
        "json_schema",
        "numeric",
        "grounded",
        "judge",
        "python",
    ]
    assert suite.scorers[2].regex.pattern == r"\d{4}"  # type: ignore[attr-defined]
    assert suite.spec.params == {"temperature": 0, "max_tokens": 128}
    assert suite.spec.slices == ["metadata.topic", "metadata.difficulty"]
    assert [g.describe() for g in suite.spec.gates] == [
        "exact.accuracy >= 0.6",
        "judge.pass_rate drops <= 0.02 vs baseline",
    ]
    assert suite.needs_gateway
    assert len(suite.hash) == 64
    assert [c.id for c in suite.cases] == ["q1"]


def test_the_suite_hash_follows_the_dataset(tmp_path: Path) -> None:
    first = load_suite(write_suite(tmp_path, ISSUE_SUITE)).hash
    (tmp_path / "cases.jsonl").write_text(CASES.replace("Paris", "Paris, France"))
    assert load_suite(tmp_path / "suite.yaml").hash != first


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("repeats: 1", "repeats: 0"), "repeats: must be >= 1"),
        (("concurrency: 8", "concurency: 8"), "Object contains unknown field `concurency`"),
        (("{type: exact}", "{type: exactish}"), "scorers[0]: unknown scorer type 'exactish'"),
        (('pattern: "\\\\d{4}"', 'pattern: "(["'), "scorers[2]: invalid regex"),
        (("exact.accuracy", "exact.acuracy"), "gates[0].metric: unknown metric 'exact.acuracy'"),
        (("max_drop: 0.02, vs: baseline", "max_drop: 0.02"), "`max_drop` goes with `vs: baseline`"),
        (
            ("{model: local}", "{model: local, variable: question}"),
            "only prompt targets bind a variable",
        ),
        (("{model: local}", "{model: local, python: 'x:y'}"), "exactly one of model, python, http"),
        (("cases.jsonl", "missing.jsonl"), "cannot read dataset"),
        (("my_scorers:no_apology", "my_scorers:nope"), "has no attribute 'nope'"),
        (
            ("  - {type: contains}\n", "  - {type: contains}\n  - {type: contains}\n"),
            "a second 'contains' scorer needs its own `name`",
        ),
    ],
)
def test_suite_mistakes_fail_early_with_the_key_path(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    assert change[0] in ISSUE_SUITE
    path = write_suite(tmp_path, ISSUE_SUITE.replace(*change, 1))
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert message in info.value.message
    assert str(path) in info.value.message


def test_dataset_formats_agree(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text(
        '{"id": 1, "input": "2+2?", "expected": 4, "metadata": {"topic": "math"}}\n\n'
        '{"id": "x", "input": [{"role": "user", "content": "hi"}], "context": ["a", "b"]}\n'
    )
    (tmp_path / "d.csv").write_text(
        'id,input,expected,topic,metadata.level\n1,2+2?,4,math,easy\nx,"hi, you","{""a"": 1}",,\n'
    )
    (tmp_path / "d.yaml").write_text("cases:\n  - {id: 1, input: '2+2?', expected: 4}\n")
    jsonl = load_dataset(tmp_path / "d.jsonl")
    assert [c.id for c in jsonl] == ["1", "x"]
    assert jsonl[1].prompt_text() == "hi" and jsonl[1].context == ["a", "b"]
    csv_cases = load_dataset(tmp_path / "d.csv")
    assert csv_cases[0].metadata == {"topic": "math", "level": "easy"}
    assert csv_cases[0].expected == "4"
    assert csv_cases[1].expected == {"a": 1} and csv_cases[1].input == "hi, you"
    assert load_dataset(tmp_path / "d.yaml")[0].expected == 4


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            '{"id": "a", "input": "x"}\n{"id": "a", "input": "y"}\n',
            "d.jsonl:2: duplicate case id 'a'",
        ),
        ('{"input": "x"}\n', "d.jsonl:1: missing `id`"),
        ('{"id": "a"}\n', "d.jsonl:1: missing `input`"),
        ('{"id": "a", "input": "x", "topic": "t"}\n', "unknown field(s) topic"),
        ('{"id": "a", "input": "x"\n', "d.jsonl:1: invalid JSON"),
        ('{"id": "a", "input": [{"content": "x"}]}\n', "input[0] needs `role` and `content`"),
        ("\n", "the dataset has no cases"),
    ],
)
def test_dataset_errors_name_the_row(tmp_path: Path, rows: str, message: str) -> None:
    (tmp_path / "d.jsonl").write_text(rows)
    with pytest.raises(SuiteError, match=re.escape(message)):
        load_dataset(tmp_path / "d.jsonl")


def test_python_and_http_targets(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "def answer(question):\n    return question.upper()\n"
        "async def with_ctx(question, ctx):\n    return await ctx.chat(question, model='m')\n"
    )
    base = (
        "name: t\ndataset: [{id: a, input: hi, metadata: {lang: en}}]\nscorers: [{type: exact}]\n"
    )
    plain = tmp_path / "plain.yaml"
    plain.write_text(base + "target: {python: 'app:answer'}\n")
    suite = load_suite(plain)
    assert isinstance(suite.target, PythonTarget) and not suite.needs_gateway
    ctx = tmp_path / "ctx.yaml"
    ctx.write_text(base + "target: {python: 'app:with_ctx'}\n")
    assert load_suite(ctx).needs_gateway
    http = tmp_path / "http.yaml"
    http.write_text(
        base + "target: {http: {url: 'http://svc/ask/{{id}}', body: {q: '{{input}}', "
        "lang: 'in {{metadata.lang}}'}, response_path: answer.text, "
        "headers: {Authorization: 'env:SVC_TOKEN'}}}\n"
    )
    with pytest.raises(SuiteError, match="environment variable SVC_TOKEN is not set"):
        load_suite(http)
    target = load_suite(http, env={"SVC_TOKEN": "Bearer s3cret"}).target
    assert isinstance(target, HttpTarget)
    assert target.headers == {"Authorization": "Bearer s3cret"}
    case = load_suite(http, env={"SVC_TOKEN": "t"}).cases[0]
    assert render(target.spec.body, case) == {"q": "hi", "lang": "in en"}
    assert render(target.spec.url, case) == "http://svc/ask/a"
    bad = tmp_path / "bad.yaml"
    bad.write_text(base + "target: {http: {url: 'http://svc', body: {q: '{{question}}'}}}\n")
    with pytest.raises(SuiteError, match="unknown placeholder"):
        load_suite(bad)


def test_the_bundled_demo_suite_loads() -> None:
    demo = load_suite(EXAMPLE.parent / "demo" / "suite.yaml")
    assert 60 <= len(demo.cases) <= 100
    tasks = {c.metadata["task"] for c in demo.cases}
    assert tasks == {"qa", "extraction", "refusal", "arithmetic"}
    assert all({"topic", "difficulty"} <= set(c.metadata) for c in demo.cases)
    # Every case is scored by exactly one task scorer (plus the judge on QA).
    for case in demo.cases:
        task_scorers = [s.name for s in demo.scorers if s.applies(case) and s.name != "judge"]
        assert task_scorers == [case.metadata["task"]], case.id


def test_prompt_targets_name_a_registry_version() -> None:
    from pilothouse.evals.targets import ModelTarget, parse_target

    spec = parse_target({"prompt": "support@3", "variable": "question"}, Path("."), "target")
    assert isinstance(spec, ModelTarget) and spec.is_prompt
    assert (spec.model, spec.variable) == ("prompt:support@3", "question")
