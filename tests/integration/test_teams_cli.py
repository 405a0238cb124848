"""`pilothouse teams|users …` and `keys create --team --user` against a real store."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest

from tests.integration.test_cli import cli
from tests.support.gateway import base_config, running_gateway, write_config

pytestmark = pytest.mark.integration


def created_id(out: str, kind: str) -> str:
    line = next(line for line in out.splitlines() if line.startswith(f"created {kind}"))
    return line.split()[2]


def test_teams_users_and_keys_commands(store_url: str, tmp_path: Path) -> None:
    config = base_config(store_url, tmp_path, prices={"gpt-4o-mini": {"input": "1", "output": "1"}})
    path = str(write_config(tmp_path / "c.yaml", config))
    team = cli("teams", "create", "--name", "search", "--budget-usd", "5", "--rpm", "9", "-c", path)
    assert team.returncode == 0, team.stderr
    team_id = created_id(team.stdout, "team")
    user = cli("users", "create", "--name", "ana", "--team", team_id, "-c", path)
    assert user.returncode == 0, user.stderr
    user_id = created_id(user.stdout, "user")
    bad = cli("users", "create", "--name", "bo", "--team", "team_nope", "-c", path)
    assert bad.returncode == 2 and "no team with id 'team_nope'" in bad.stderr
    assert "Traceback" not in bad.stderr
    key = cli("keys", "create", "--name", "k", "--team", team_id, "--user", user_id, "-c", path)
    assert key.returncode == 0, key.stderr
    secret = key.stdout.strip().splitlines()[-1]

    listed = cli("teams", "list", "-c", path)
    assert "search" in listed.stdout and "5 (total)" in listed.stdout
    members = cli("users", "list", "--team", team_id, "-c", path)
    assert "ana" in members.stdout
    updated = cli("teams", "update", team_id, "--budget-usd", "0", "-c", path)
    assert updated.returncode == 0, updated.stderr
    shown = orjson.loads(cli("teams", "show", team_id, "-c", path).stdout)
    assert (shown["budget_usd"], shown["rpm"]) == ("0", 9)

    with running_gateway(config) as gw:
        resp = httpx.post(
            gw.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert resp.status_code == 429 and resp.json()["error"]["code"] == "team_budget_exceeded"
        with gw.admin() as admin:
            admin.get("/admin/usage")  # flush the ledger before the CLI reads it
    usage = cli("usage", "--group-by", "team", "--json", "-c", path)
    assert orjson.loads(usage.stdout)["data"] == [
        {"team": team_id, "requests": 1, "errors": 1, "input_tokens": 0, "output_tokens": 0,
         "cached_input_tokens": 0, "cost_usd": "0"}
    ]  # fmt: skip
    report = cli("report", "costs", "--by", "team,user", "--format", "csv", "-c", path)
    assert report.returncode == 0, report.stderr
    assert f"{team_id},search,{user_id},ana" in report.stdout

    busy = cli("teams", "delete", team_id, "-c", path)
    assert busy.returncode == 2 and "revoke or move them first" in busy.stderr
    assert cli("users", "update", user_id, "--team", "none", "-c", path).returncode == 0
    key_id = next(ln for ln in key.stdout.splitlines() if "created key" in ln).split()[2]
    assert cli("keys", "revoke", key_id, "-c", path).returncode == 0
    gone = cli("teams", "delete", team_id, "-c", path)
    assert gone.returncode == 0 and "deleted team" in gone.stdout, gone.stderr
    assert cli("teams", "show", team_id, "-c", path).returncode == 2
