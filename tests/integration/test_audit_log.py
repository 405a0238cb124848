"""The audit log through a real gateway and the CLI: who did what, and tampering is caught."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text

from pilothouse.config.load import load_settings
from pilothouse.store.db import create_engine
from tests.support.gateway import ThreadedGateway, base_config, running_gateway, write_config

pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pilothouse.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def sql(store_url: str, *statements: str) -> None:
    async def go() -> None:
        engine = create_engine(store_url)
        try:
            async with engine.begin() as conn:
                for statement in statements:
                    await conn.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(go())


def _populate(store_url: str, tmp_path: Path) -> Path:
    """Five changes by three principals: bootstrap, alice (operator) and the CLI."""
    config = base_config(store_url, tmp_path)
    path = write_config(tmp_path / "c.yaml", config)
    gw = ThreadedGateway(load_settings(path)).start()  # from the file: reload re-reads it
    try:
        alice = gw.create_key(name="alice", role="operator")
        with gw.admin() as admin:
            admin.headers["Authorization"] = f"Bearer {alice}"
            made = admin.post("/admin/keys", json={"name": "app"})
            assert made.status_code == 201, made.text
            assert admin.delete(f"/admin/keys/{made.json()['id']}").status_code == 200
            reloaded = admin.post("/admin/reload")
            assert reloaded.status_code == 200 and reloaded.json()["reloaded"] is True
    finally:
        gw.stop()
    created = cli("keys", "create", "--name", "batch", "--config", str(path))
    assert created.returncode == 0, created.stderr
    return path


def test_every_change_is_one_row_with_its_principal(store_url: str, tmp_path: Path) -> None:
    config = base_config(store_url, tmp_path)
    path = _populate(store_url, tmp_path)
    exported = cli("audit", "export", "--config", str(path))
    assert exported.returncode == 0, exported.stderr
    rows = [orjson.loads(line) for line in exported.stdout.splitlines()]
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    seen = [(r["actor"], r["action"]) for r in rows]
    assert seen[:4] == [
        ("bootstrap", "key.create"),
        ("alice", "key.create"),
        ("alice", "key.revoke"),
        ("alice", "config.reload"),
    ]
    assert seen[4][0].startswith("cli:") and seen[4][1] == "key.create"
    assert all(r["prev_hash"] == p["hash"] for p, r in itertools.pairwise(rows))
    assert "ph-" not in exported.stdout  # no secret ever reaches the log
    with running_gateway(config) as gw, gw.admin() as admin:
        by_alice = admin.get("/admin/audit", params={"actor": "alice"}).json()["data"]
        assert [r["action"] for r in by_alice] == ["key.create", "key.revoke", "config.reload"]
        page = admin.get("/admin/audit", params={"limit": 2}).json()
        assert [r["seq"] for r in page["data"]] == [1, 2]
        rest = admin.get("/admin/audit", params={"cursor": page["next_cursor"]}).json()
        assert rest["data"][0]["seq"] == 3
        revokes = admin.get("/admin/audit", params={"action": "key.revoke"}).json()["data"]
        assert [r["seq"] for r in revokes] == [3]


def test_verify_holds_then_names_the_tampered_seq(store_url: str, tmp_path: Path) -> None:
    path = _populate(store_url, tmp_path)
    ok = cli("audit", "verify", "--config", str(path))
    assert ok.returncode == 0, ok.stderr
    head = cli("audit", "head", "--config", str(path)).stdout.strip()
    assert f"5 rows, head {head}" in ok.stdout

    sql(store_url, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    edited = cli("audit", "verify", "--config", str(path))
    assert edited.returncode == 1
    assert "seq 2" in edited.stderr and "edited" in edited.stderr
    sql(store_url, "UPDATE audit_log SET actor = 'alice' WHERE seq = 2")
    assert cli("audit", "verify", "--config", str(path)).returncode == 0

    # Swap rows 3 and 4 (through a free seq, so the primary key holds).
    sql(
        store_url,
        "UPDATE audit_log SET seq = 100 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = 4",
        "UPDATE audit_log SET seq = 4 WHERE seq = 100",
    )
    reordered = cli("audit", "verify", "--config", str(path))
    assert reordered.returncode == 1
    assert "seq 3" in reordered.stderr and "reordered" in reordered.stderr
    sql(
        store_url,
        "UPDATE audit_log SET seq = 100 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = 4",
        "UPDATE audit_log SET seq = 4 WHERE seq = 100",
    )

    sql(store_url, "DELETE FROM audit_log WHERE seq = 2")
    removed = cli("audit", "verify", "--config", str(path))
    assert removed.returncode == 1
    assert "seq 2" in removed.stderr and "removed" in removed.stderr


def test_expect_head_catches_a_truncated_tail(store_url: str, tmp_path: Path) -> None:
    path = _populate(store_url, tmp_path)
    head = cli("audit", "head", "--config", str(path)).stdout.strip()
    assert cli("audit", "verify", "--expect-head", head, "--config", str(path)).returncode == 0
    sql(store_url, "DELETE FROM audit_log WHERE seq = 5")
    assert cli("audit", "verify", "--config", str(path)).returncode == 0  # a shorter chain holds
    cut = cli("audit", "verify", "--expect-head", head, "--config", str(path))
    assert cut.returncode == 1
    assert "seq 5" in cut.stderr and "removed" in cut.stderr
