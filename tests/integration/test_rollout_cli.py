"""``pilothouse rollout``: start, list, status (tables, JSON, --watch), promote, rollback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.integration.test_rollouts import BUNDLE, chat, config, tick
from tests.support.gateway import running_gateway, write_config

pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pilothouse.cli.main", "rollout", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "160"},
    )


def test_rollout_cli_drives_a_gateway(tmp_path: Path) -> None:
    cfg_dict = config(f"sqlite:///{tmp_path}/p.db", tmp_path)
    cfg = str(write_config(tmp_path / "c.yaml", cfg_dict))
    with running_gateway(cfg_dict) as gw, gw.admin() as admin:
        key = gw.create_key(name="app")
        started = cli(
            "start", "--alias", "chat", "--candidate-alias", "chat-next", "--percent", "50",
            "--sticky", "user", "--guard", "error_rate:max_increase=0.02", "--min-samples", "5",
            "--json", "-c", cfg,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        rollout = orjson.loads(started.stdout)
        assert rollout["created_by"].startswith("cli:") and rollout["min_samples"] == 5
        twice = cli("start", "--alias", "chat", "--candidate-alias", "chat-bad", "-c", cfg)
        assert twice.returncode == 2 and "already running" in twice.stderr
        bad = cli("start", "--alias", "chat", "--candidate-alias", "nope", "-c", cfg)
        assert bad.returncode == 2 and "nope" in bad.stderr
        tick(gw)  # the gateway's store poll picks the CLI's rollout up
        arms = {chat(gw, key, user=f"c{i}").headers["x-pilothouse-arm"] for i in range(30)}
        assert arms == {"baseline", "candidate"}
        tick(gw)  # flush the gateway's counts (the test config flushes every 60 s, not 0.25 s)

        listed = cli("list", "-c", cfg)
        assert listed.returncode == 0 and rollout["id"] in listed.stdout
        shown = cli("status", rollout["id"], "-c", cfg)
        assert shown.returncode == 0, shown.stderr
        for text in ("baseline", "candidate", "error rate", "latency p95 s", "error_rate", "SRM"):
            assert text in shown.stdout
        figures = orjson.loads(cli("status", rollout["id"], "--json", "-c", cfg).stdout)
        total = sum(figures["arms"][a]["requests"] for a in ("baseline", "candidate"))
        assert total == 30

        back = cli("rollback", rollout["id"], "--reason", "enough", "-c", cfg)
        assert back.returncode == 0, back.stderr
        tick(gw)
        assert "x-pilothouse-arm" not in chat(gw, key, user="c1").headers
        watched = cli("status", rollout["id"], "--watch", "-c", cfg)  # ended: draws once, exits
        assert watched.returncode == 0 and "rolled_back" in watched.stdout
        again = cli("rollback", rollout["id"], "-c", cfg)
        assert again.returncode == 2 and "not running" in again.stderr

        assert admin.post("/admin/prompts", json=BUNDLE).status_code == 201
        two = {**BUNDLE, "messages": [{"role": "system", "content": "You are version two."}]}
        assert admin.post("/admin/prompts", json=two).status_code == 201
        assert admin.put("/admin/prompts/support-answer/labels/prod", json={"version": 1})
        prompt = orjson.loads(
            cli(
                "start", "--prompt", "support-answer", "--label", "prod", "--candidate", "2",
                "--json", "-c", cfg,
            ).stdout
        )  # fmt: skip
        promoted = cli("promote", prompt["id"], "--reason", "looks good", "-c", cfg)
        assert promoted.returncode == 0, promoted.stderr
        assert "prod → version 2" in promoted.stdout
        tick(gw)
        resp = chat(gw, key, user="c1", model="prompt:support-answer@prod")
        assert resp.headers["x-pilothouse-prompt"] == "support-answer@2"
