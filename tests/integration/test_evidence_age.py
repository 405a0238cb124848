"""`max_evidence_age`: the issue's `releases` block loads as written, a malformed age stops
start-up, and an eval run older than the age no longer counts as evidence."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import update

from pilothouse.config.load import load_settings
from pilothouse.errors import ConfigError
from pilothouse.releases.tables import prompt_evidence
from tests.integration.test_prompts import BUNDLE, principal
from tests.support.gateway import base_config, running_gateway, write_config

pytestmark = pytest.mark.integration

ISSUE_RELEASES = """
releases:
  labels:
    staging: {requires: [evals]}
    prod:    {requires: [evals, staging, approval], approvals: 1, max_evidence_age: 7d}
"""


def test_the_issue_releases_block_loads_and_a_bad_age_is_a_startup_error(tmp_path: Path) -> None:
    config = base_config(f"sqlite:///{tmp_path}/a.db", tmp_path)
    path = write_config(tmp_path / "c.yaml", config)
    path.write_text(path.read_text() + ISSUE_RELEASES)
    prod = load_settings(path).releases.labels["prod"]
    assert prod.requires == ["evals", "staging", "approval"]
    assert (prod.approvals, prod.max_evidence_age) == (1, "7d")
    for bad, words in (("7days", "max_evidence_age"), ("0d", "max_evidence_age")):
        path.write_text(
            path.read_text().replace("max_evidence_age: 7d", f"max_evidence_age: {bad}")
        )
        with pytest.raises(ConfigError, match=words):
            load_settings(path)
        path.write_text(
            path.read_text().replace(f"max_evidence_age: {bad}", "max_evidence_age: 7d")
        )
    broken = yaml.safe_load(path.read_text())
    broken["releases"]["labels"]["prod"]["approvals"] = 0
    path.write_text(yaml.safe_dump(broken))
    with pytest.raises(ConfigError, match="approvals"):
        load_settings(path)


def test_evidence_older_than_the_age_does_not_count(store_url: str, tmp_path: Path) -> None:
    releases = {"labels": {"staging": {"requires": ["evals"], "max_evidence_age": "7d"}}}
    with running_gateway(base_config(store_url, tmp_path, releases=releases)) as gw:
        alice = principal(gw, "alice")
        assert alice.post("/admin/prompts", json={**BUNDLE, "reason": "v1"}).status_code == 201
        assert gw.runtime is not None
        registry = gw.runtime.prompts

        def run(coro: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(coro, gw.server_loop()).result(30)

        v1 = run(registry.version("support-answer", 1))
        run(
            registry.record_evidence(
                v1, run_id="run_old", suite=BUNDLE["evals"][0], passed=True, gates=[]
            )
        )

        async def age_it() -> None:
            async with registry.engine.begin() as conn:
                await conn.execute(
                    update(prompt_evidence).values(at=datetime.now(UTC) - timedelta(days=8))
                )

        run(age_it())
        path = "/admin/prompts/support-answer/labels/staging"
        stale = alice.put(path, json={"version": 1, "reason": "old run"})
        assert stale.status_code == 409, stale.text
        assert stale.json()["error"]["code"] == "gate_not_met"
        assert stale.json()["error"]["missing"][0].startswith("evals: no passing run")

        run(
            registry.record_evidence(
                v1, run_id="run_new", suite=BUNDLE["evals"][0], passed=True, gates=[]
            )
        )
        fresh = alice.put(path, json={"version": 1, "reason": "fresh run"})
        assert fresh.status_code == 200, fresh.text
        history = alice.get(path + "/history").json()["data"]
        assert history[-1]["evidence"][0]["run_id"] == "run_new"
        alice.close()
