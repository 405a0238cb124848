"""A small eval against the bundled SmolLM2 model through the embedded gateway: the whole
path works with a real model, and a grammar-constrained judge answers in parseable JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pilothouse.cli.main import app
from pilothouse.errors import ConfigError
from pilothouse.providers.llamacpp import resolve_model_path
from tests.support.gateway import write_config

pytestmark = pytest.mark.integration

SUITE = """\
name: local-smoke
target: {model: local}
params: {temperature: 0, max_tokens: 16}
dataset:
  - {id: capital, input: "What is the capital of France? Answer with one word.", expected: Paris}
  - {id: sum, input: "What is 2 + 3? Answer with just the number.", expected: 5}
  - {id: extract, input: 'Return JSON with keys name and age for: "Maria is 34."',
     expected: {name: Maria, age: 34}}
scorers:
  - {type: contains, when: {id: capital}}
  - {type: numeric, when: {id: sum}}
  - {type: json_schema, when: {id: extract}, schema: {type: object, required: [name]}}
  - {type: judge, model: local, rubric: "Is the answer correct?", when: {id: capital},
     max_tokens: 48}
concurrency: 2
"""


@pytest.fixture(scope="module", autouse=True)
def bundled_model() -> None:
    try:
        resolve_model_path("default")
    except ConfigError as exc:
        if os.environ.get("PILOTHOUSE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"bundled model missing: {exc.message}")
        pytest.skip(f"bundled model missing: {exc.message}")


def test_a_small_suite_runs_end_to_end_on_the_local_model(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "local.yaml",
        {
            "store": {
                "url": f"sqlite:///{tmp_path / 'local.db'}",
                "spool_path": str(tmp_path / "spool.jsonl"),
            },
            "providers": {"local": {"type": "llamacpp", "model_path": "default", "seed": 1}},
            "models": {"local": {"targets": [{"provider": "local", "model": "smollm2-135m"}]}},
        },
    )
    (tmp_path / "suite.yaml").write_text(SUITE)
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "run",
            str(tmp_path / "suite.yaml"),
            "--config",
            str(config),
            "--json",
            str(tmp_path / "run.json"),
        ],
    )
    assert result.exit_code == 0, result.output  # no gates: completed is success
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["run"]["status"] == "completed"
    samples = {c["case"]["id"]: c["samples"][0] for c in report["cases"]}
    for sample in samples.values():
        assert sample.get("output", "").strip()
        assert sample["request_ids"][0].startswith("req_")
        assert sample["output_tokens"] <= 16
        assert isinstance(sample["cost_pico"], int)  # known exactly (local model: free)
    judge = next(v for v in samples["capital"]["verdicts"] if v["scorer"] == "judge")
    assert "error" not in judge, judge  # JSON grammar: the tiny model's verdict parses
    assert 1 <= judge["value"] <= 5
