"""The CLI against a real store: keys, usage, traces, SLO rules — clean output, clean errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.gateway import base_config, running_gateway, write_config

pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pilothouse.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_keys_usage_and_traces_commands(store_url: str, tmp_path: Path) -> None:
    config = base_config(
        store_url, tmp_path, prices={"gpt-4o-mini": {"input": "0.15", "output": "0.60"}}
    )
    path = write_config(tmp_path / "c.yaml", config)
    created = cli(
        "keys",
        "create",
        "--name",
        "cli-team",
        "--rpm",
        "5",
        "--budget-usd",
        "2.5",
        "--config",
        str(path),
    )
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("ph-")
    listed = cli("keys", "list", "--config", str(path))
    assert "cli-team" in listed.stdout and secret not in listed.stdout
    with running_gateway(config) as gw:
        resp = httpx.post(
            gw.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": "chat", "messages": [{"role": "user", "content": "a b c"}]},
        )
        assert resp.status_code == 200
        with gw.admin() as admin:
            admin.get("/admin/traces")  # flush ledger and traces before the CLI reads
            admin.get("/admin/usage")
    usage = cli("usage", "--group-by", "model", "--json", "--config", str(path))
    assert usage.returncode == 0, usage.stderr
    total = orjson.loads(usage.stdout)["total"]
    assert total["requests"] == 1 and total["cost_usd"] == "0.0000027"  # 6 in, 3 out
    wide = {**os.environ, "COLUMNS": "250"}  # one table row per key, nothing wrapped
    spent = subprocess.run(
        [sys.executable, "-m", "pilothouse.cli.main", "keys", "list", "--config", str(path)],
        capture_output=True, text=True, timeout=120, env=wide, check=True,
    ).stdout  # fmt: skip
    [row] = [line for line in spent.splitlines() if "cli-team" in line]
    # spend this period, budget left (2.5 - spend) and the time of last use
    assert "0.0000027" in row and "2.4999973" in row and "never" not in row
    shown = cli("traces", "show", resp.headers["x-request-id"], "--config", str(path))
    assert shown.returncode == 0, shown.stderr
    assert "chat gpt-4o-mini" in shown.stdout and "a b c" in shown.stdout
    listing = cli("traces", "list", "--json", "--config", str(path))
    assert orjson.loads(listing.stdout)["data"][0]["request_id"] == resp.headers["x-request-id"]
    key_id = next(line for line in created.stdout.splitlines() if "created key" in line).split()[2]
    revoked = cli("keys", "revoke", key_id, "--config", str(path))
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    pruned = cli("traces", "prune", "--older-than-days", "1", "--config", str(path))
    assert pruned.returncode == 0 and "pruned 0 trace(s)" in pruned.stdout


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.yaml", base_config(f"sqlite:///{tmp_path}/x.db", tmp_path))
    missing = cli("traces", "show", "req_nope", "--config", str(path))
    assert missing.returncode == 2
    assert "no trace for 'req_nope'" in missing.stderr and "Traceback" not in missing.stderr
    no_slo = cli("slo", "rules", "--config", str(path))
    assert no_slo.returncode == 2 and "no SLOs" in no_slo.stderr


def test_slo_rules_from_config(tmp_path: Path) -> None:
    config = base_config(
        f"sqlite:///{tmp_path}/x.db",
        tmp_path,
        slo={"objectives": [{"name": "chat-avail", "alias": "chat", "objective": 0.999}]},
    )
    path = write_config(tmp_path / "c.yaml", config)
    out = tmp_path / "rules.yaml"
    result = cli("slo", "rules", "--config", str(path), "--output", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "pilothouse-slo-chat-avail" in text and "14.4" in text


def test_doctor_and_config_check_catch_a_missing_model(tmp_path: Path) -> None:
    good = write_config(tmp_path / "ok.yaml", base_config(f"sqlite:///{tmp_path}/d.db", tmp_path))
    doctor = cli("doctor", "--config", str(good))
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "store" in doctor.stdout and "FAIL" not in doctor.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers: {l: {type: llamacpp, model_path: /nowhere/model.gguf}}\n")
    check = cli("config", "check", str(bad))
    assert check.returncode == 2
    assert "providers.l: model_path: '/nowhere/model.gguf' is not a file" in check.stderr
    unreachable = write_config(
        tmp_path / "pg.yaml", base_config("postgresql://nobody@127.0.0.1:1/none", tmp_path)
    )
    down = cli("doctor", "--config", str(unreachable))
    assert down.returncode == 1 and "FAIL" in down.stdout


def test_keys_update_and_rotate_reach_a_running_gateway(store_url: str, tmp_path: Path) -> None:
    config = base_config(store_url, tmp_path)
    path = write_config(tmp_path / "c.yaml", config)
    created = cli("keys", "create", "--name", "rot", "--models", "chat", "--config", str(path))
    assert created.returncode == 0, created.stderr
    old = created.stdout.strip().splitlines()[-1]
    key_id = created.stdout.split("created key ")[1].split()[0]
    with running_gateway(config) as gw:

        def status(secret: str) -> int:
            resp = httpx.post(
                gw.url + "/v1/chat/completions",
                json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {secret}"},
            )
            return resp.status_code

        assert status(old) == 200
        updated = cli("keys", "update", key_id, "--models", "other", "--config", str(path))
        assert updated.returncode == 0, updated.stderr
        # The CLI wrote the store directly; the gateway's poll drops its cached copy.
        assert wait_for(lambda: status(old) == 403)

        rotated = cli("keys", "rotate", key_id, "--grace-s", "0", "--config", str(path))
        assert rotated.returncode == 0, rotated.stderr
        new = rotated.stdout.strip().splitlines()[-1]
        assert new.startswith("ph-") and new != old
        assert wait_for(lambda: status(old) == 401)
        assert status(new) == 403  # same key, same (updated) model list

    bad = cli("keys", "update", key_id, "--metadata", "{team:x}", "--config", str(path))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr + bad.stdout
    assert "--metadata must be a JSON object" in bad.stderr + bad.stdout


def wait_for(condition: object, timeout_s: float = 20.0) -> bool:
    """Poll an observable condition with a bounded deadline (no fixed sleeps)."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False
