"""`pilothouse promote` produces its own evidence: it runs the bundle's suites on exactly the
candidate version, compares with the label's current holder, and refuses a real regression."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from pilothouse.audit.log import read_rows
from pilothouse.config.load import load_settings
from pilothouse.errors import ConfigError
from pilothouse.providers.llamacpp import resolve_model_path
from pilothouse.store.db import create_engine
from tests.support.gateway import base_config, write_config

pytestmark = pytest.mark.integration
WORDS = [f"word{i}" for i in range(10)]
RELEASES = {"labels": {"staging": {"requires": ["evals"]}}}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pilothouse.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def bundle(suite: Path, content: str, description: str) -> dict[str, Any]:
    return {
        "name": "echo-answer",
        "description": description,
        "model": "chat",
        "params": {"max_tokens": 50},
        "messages": [{"role": "user", "content": content}],
        "variables": {"question": {"type": "string", "required": True}},
        "evals": [str(suite)],
        "card": {"intended_use": "tests"},
    }


def audit_rows(config: Path) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        engine = create_engine(load_settings(config).store.url)
        try:
            return await read_rows(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_promote_runs_missing_evals_against_the_holder_and_refuses_a_regression(
    store_url: str, tmp_path: Path
) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "name": "echo-qa",
                "target": {"model": "chat"},
                "dataset": [{"id": w, "input": w, "expected": w} for w in WORDS],
                "scorers": [{"type": "contains"}],
                "gates": [{"metric": "contains.pass_rate", "max_drop": 0.02, "vs": "baseline"}],
            }
        )
    )
    cfg = write_config(tmp_path / "c.yaml", base_config(store_url, tmp_path, releases=RELEASES))
    files = {}
    # The chaos upstream echoes the last user message: v1 and v3 answer, v2 forgets to.
    for n, (content, description) in enumerate(
        [("{{ question }}", "v1"), ("I cannot help.", "v2"), ("Answer: {{ question }}", "v3")], 1
    ):
        files[n] = tmp_path / f"v{n}.yaml"
        files[n].write_text(yaml.safe_dump(bundle(suite, content, description)))

    assert cli("prompts", "push", str(files[1]), "-c", str(cfg)).returncode == 0
    first = cli("promote", "echo-answer", "--version", "1", "--to", "staging", "-c", str(cfg))
    assert first.returncode == 0, first.stderr
    assert "on v1 (candidate)" in first.stderr and "passed its gates" in first.stderr
    assert "staging: None -> 1" in first.stdout

    assert cli("prompts", "push", str(files[2]), "-c", str(cfg)).returncode == 0
    refused = cli("promote", "echo-answer", "--version", "2", "--to", "staging", "-c", str(cfg))
    assert refused.returncode == 2, refused.stdout
    assert "did NOT pass" in refused.stderr
    assert "contains.pass_rate" in refused.stderr and "significant drop" in refused.stderr
    assert "compared with staging's current holder v1" in refused.stderr
    shown = orjson.loads(cli("prompts", "show", "echo-answer", "-c", str(cfg)).stdout)
    assert shown["labels"] == {"staging": 1}
    rows = audit_rows(cfg)
    refusal = [r for r in rows if r["action"] == "label.refused"]
    assert len(refusal) == 1 and refusal[0]["target"] == "echo-answer/staging"
    assert refusal[0]["details"]["version"] == 2
    assert any("significant drop" in m for m in refusal[0]["details"]["missing"])

    # A fixed version: its run reuses v1's run as the baseline and passes.
    assert cli("prompts", "push", str(files[3]), "-c", str(cfg)).returncode == 0
    fixed = cli("promote", "echo-answer", "--version", "3", "--to", "staging", "-c", str(cfg))
    assert fixed.returncode == 0, fixed.stderr
    assert "(baseline)" not in fixed.stderr  # v1's earlier run was the baseline, not rerun
    assert "staging: 1 -> 3" in fixed.stdout
    history = cli("prompts", "show", "echo-answer@staging", "-c", str(cfg))
    assert orjson.loads(history.stdout)["version"] == 3
    moves = [r for r in audit_rows(cfg) if r["action"] == "label.move"]
    assert [r["details"]["to"] for r in moves] == [1, 3]
    assert moves[-1]["details"]["evidence"] and moves[-1]["details"]["evidence"][0]

    # Rolling back to a version that held staging needs no new run: its evidence stands.
    back = cli("promote", "echo-answer", "--version", "1", "--to", "staging", "-c", str(cfg))
    assert back.returncode == 0, back.stderr
    assert "candidate" not in back.stderr and "staging: 3 -> 1" in back.stdout


def test_promote_runs_a_suite_on_the_local_model(tmp_path: Path) -> None:
    try:
        resolve_model_path("default")
    except ConfigError as exc:
        if os.environ.get("PILOTHOUSE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"bundled model missing: {exc.message}")
        pytest.skip(f"bundled model missing: {exc.message}")
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "name": "local-qa",
                "target": {"prompt": "local-answer@prod", "variable": "question"},
                "dataset": [{"id": "capital", "input": "What is the capital of France?"}],
                "params": {"temperature": 0},
                "scorers": [{"type": "regex", "pattern": "\\w"}],
                "gates": [
                    {"metric": "regex.pass_rate", "min": 1.0},
                    {"metric": "latency.p95_s", "max": 600},
                ],
            }
        )
    )
    config = {
        "store": {"url": f"sqlite:///{tmp_path / 'l.db'}", "spool_path": str(tmp_path / "s")},
        "providers": {"local": {"type": "llamacpp", "model_path": "default", "seed": 1}},
        "models": {"local": {"targets": [{"provider": "local", "model": "smollm2-135m"}]}},
        "releases": RELEASES,
    }
    cfg = write_config(tmp_path / "c.yaml", config)
    file = tmp_path / "p.yaml"
    file.write_text(
        yaml.safe_dump(
            {
                "name": "local-answer",
                "description": "one-word answers",
                "model": "local",
                "params": {"max_tokens": 8},
                "messages": [
                    {"role": "system", "content": "Answer in one word."},
                    {"role": "user", "content": "{{ question }}"},
                ],
                "variables": {"question": {"type": "string", "required": True}},
                "evals": [str(suite)],
            }
        )
    )
    assert cli("prompts", "push", str(file), "-c", str(cfg)).returncode == 0
    promoted = cli("promote", "local-answer", "--version", "1", "--to", "staging", "-c", str(cfg))
    assert promoted.returncode == 0, promoted.stderr
    assert "passed its gates" in promoted.stderr and "staging: None -> 1" in promoted.stdout
    card = orjson.loads(cli("prompts", "card", "local-answer@1", "-c", str(cfg)).stdout)
    [evidence] = card["evidence"]
    assert evidence["passed"] is True and evidence["suite"] == str(suite)
    assert "latency.p95_s <= 600" in {g["name"] for g in evidence["gates"]}
    report = tmp_path / "run.json"
    shown = cli("eval", "show", evidence["run_id"], "--json", str(report), "-c", str(cfg))
    assert shown.returncode == 0, shown.stderr
    assert orjson.loads(report.read_bytes())["run"]["target"] == {"model": "prompt:local-answer@1"}
