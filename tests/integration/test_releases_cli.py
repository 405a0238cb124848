"""Releases across processes: the CLI on the store, a second gateway seeing label moves."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from tests.integration.test_prompts import BUNDLE, RELEASES
from tests.support.gateway import (
    ADMIN_KEY,
    ProcessGateway,
    ThreadedGateway,
    base_config,
    free_port,
    running_gateway,
    write_config,
)

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pilothouse.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_prompts_cli_push_render_promote_drift_sync(store_url: str, tmp_path: Path) -> None:
    config = base_config(store_url, tmp_path, releases=RELEASES)
    cfg = str(write_config(tmp_path / "c.yaml", config))
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    file = prompts / "support-answer.yaml"
    file.write_text(yaml.safe_dump(BUNDLE))

    pushed = cli("prompts", "push", str(file), "--reason", "first", "-c", cfg)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.startswith("support-answer@1 ") and "created" in pushed.stdout
    again = cli("prompts", "push", str(file), "--reason", "again", "-c", cfg)
    assert again.stdout.startswith("support-answer@1 ") and "unchanged" in again.stdout
    shown = orjson.loads(cli("prompts", "show", "support-answer@1", "-c", cfg).stdout)
    assert shown["author"].startswith("cli:") and shown["reason"] == "first"

    rendered = cli("prompts", "render", "support-answer@1", "--var", "question=hi", "-c", cfg)
    assert rendered.returncode == 0, rendered.stderr
    assert orjson.loads(rendered.stdout)["messages"][1]["content"] == "About pilothouse: hi"
    missing = cli("prompts", "render", "support-answer@1", "-c", cfg)
    assert missing.returncode == 2 and "question" in missing.stderr

    # Protected label without evidence: refused, naming what is missing.
    refused = cli("promote", "support-answer", "--version", "1", "--to", "prod", "-c", cfg)
    assert refused.returncode == 2 and "evals" in refused.stderr
    forced = cli(
        "promote", "support-answer", "--version", "1", "--to", "prod",
        "--force", "--reason", "bootstrap release", "--actor", "oncall", "-c", cfg,
    )  # fmt: skip
    assert forced.returncode == 0, forced.stderr
    assert "None -> 1 (forced)" in forced.stdout
    assert cli("prompts", "drift", str(prompts), "-c", cfg).returncode == 0

    file.write_text(yaml.safe_dump({**BUNDLE, "description": "edited in git"}))
    drifted = cli("prompts", "drift", str(prompts), "-c", cfg)
    assert drifted.returncode == 1 and "support-answer" in drifted.stdout
    synced = cli("prompts", "sync", str(prompts), "--label", "dev", "-c", cfg)
    assert synced.returncode == 0, synced.stderr
    assert "support-answer@2 created, dev -> 2" in synced.stdout
    diff = cli("prompts", "diff", "support-answer", "1", "dev", "-c", cfg)
    assert "+description: edited in git" in diff.stdout


def test_approve_lineage_and_routes_cli(store_url: str, tmp_path: Path) -> None:
    config = base_config(store_url, tmp_path, releases=RELEASES)
    cfg = str(write_config(tmp_path / "c.yaml", config))
    with running_gateway(config) as gw:
        key = gw.create_key(name="app")
        with gw.admin() as admin:
            assert admin.post("/admin/prompts", json={**BUNDLE, "reason": "v1"}).status_code == 201
            moved = admin.put(
                "/admin/prompts/support-answer/labels/prod",
                json={"version": 1, "force": True, "reason": "bootstrap release"},
            )
            assert moved.status_code == 200, moved.text
        served = httpx.post(
            gw.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "prompt:support-answer@prod", "prompt_variables": {"question": "x"}},
        )
        assert served.headers["x-pilothouse-prompt"] == "support-answer@1"
        with gw.admin() as admin:
            admin.get("/admin/usage")  # flush the ledger
    self_ok = cli(
        "prompts", "approve", "support-answer", "1", "--label", "prod",
        "--actor", "bootstrap", "-c", cfg,
    )  # fmt: skip
    assert self_ok.returncode == 2 and "four eyes" in self_ok.stderr  # bootstrap pushed v1
    other = cli(
        "prompts", "approve", "support-answer", "1", "--label", "prod",
        "--reason", "looks right", "--actor", "reviewer", "-c", cfg,
    )  # fmt: skip
    assert other.returncode == 0, other.stderr
    lineage = cli("lineage", served.headers["x-request-id"], "-c", cfg)
    assert lineage.returncode == 0, lineage.stderr
    got = orjson.loads(lineage.stdout)
    assert got["prompt"]["version"] == 1 and got["promotion"]["who"] == "bootstrap"
    assert got["forced"] is True and got["promotion"]["why"] == "bootstrap release"
    listed = cli("routes", "list", "-c", cfg)
    assert listed.returncode == 0 and "startup" in listed.stdout


def _serve(gw: ProcessGateway | ThreadedGateway, key: str, label: str) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": f"prompt:support-answer@{label}", "prompt_variables": {"question": "q"}},
        timeout=30,
    )


def _seen_within(deadline_s: float, check: Any) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if check():
            return True
    return bool(check())


@pytest.mark.parametrize("with_redis", [True, False], ids=["redis", "store-poll"])
def test_label_move_reaches_another_gateway_process(
    store_url: str, tmp_path: Path, request: pytest.FixtureRequest, with_redis: bool
) -> None:
    extra: dict[str, Any] = {}
    if with_redis:
        extra["redis"] = {
            "url": request.getfixturevalue("redis_url"),
            "prefix": request.getfixturevalue("redis_prefix"),
        }
    config = base_config(store_url, tmp_path, **extra)
    path = write_config(tmp_path / "p.yaml", config)
    other = ProcessGateway(path, free_port(), {}).start()
    try:
        with running_gateway(config) as gw, gw.admin() as admin:
            key = gw.create_key(name="app")
            admin.post("/admin/prompts", json=BUNDLE)
            admin.post("/admin/prompts", json={**BUNDLE, "description": "two"})
            admin.put("/admin/prompts/support-answer/labels/prod", json={"version": 1})
            assert _serve(other, key, "prod").headers["x-pilothouse-prompt"] == "support-answer@1"

            admin.put("/admin/prompts/support-answer/labels/prod", json={"version": 2})
            # Within a second on the other process (pub/sub, or the 1 s store poll).
            budget = 1.0 if with_redis else 2.5
            assert _seen_within(
                budget,
                lambda: (
                    _serve(other, key, "prod").headers.get("x-pilothouse-prompt")
                    == "support-answer@2"
                ),
            )
            admin.delete("/admin/prompts/support-answer/labels/prod")
            assert _seen_within(budget, lambda: _serve(other, key, "prod").status_code == 404)
    finally:
        other.stop()


def test_cli_label_move_is_published_to_every_gateway(
    store_url: str, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """A move made by the CLI (no gateway involved) reaches running replicas through Redis."""
    import redis

    config = base_config(store_url, tmp_path, redis={"url": redis_url, "prefix": redis_prefix})
    path = write_config(tmp_path / "p.yaml", config)
    listener = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(redis_prefix + "prompts:labels")

    def published() -> Any:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # skips the subscribe confirmation
            found = listener.get_message(timeout=deadline - time.monotonic())
            if found is not None:
                return found["data"]
        return None

    other = ProcessGateway(path, free_port(), {}).start()
    try:
        with running_gateway(config) as gw, gw.admin() as admin:
            key = gw.create_key(name="app")
            admin.post("/admin/prompts", json=BUNDLE)
            admin.post("/admin/prompts", json={**BUNDLE, "description": "two"})
            admin.put("/admin/prompts/support-answer/labels/prod", json={"version": 1})
            assert published() == b"support-answer\x00prod"
            assert _serve(other, key, "prod").headers["x-pilothouse-prompt"] == "support-answer@1"
            assert _serve(gw, key, "prod").headers["x-pilothouse-prompt"] == "support-answer@1"

            moved = cli("prompts", "label", "support-answer", "2", "prod", "-c", str(path))
            assert moved.returncode == 0, moved.stderr
            assert "warning" not in moved.stderr
            # The CLI itself told Redis (not only the store poll)...
            assert published() == b"support-answer\x00prod"
            # ...and both gateways serve the new version within a second.
            for replica in (other, gw):
                assert _seen_within(
                    1.0,
                    lambda r=replica: (
                        _serve(r, key, "prod").headers.get("x-pilothouse-prompt")
                        == "support-answer@2"
                    ),
                )
    finally:
        other.stop()
        listener.close()
