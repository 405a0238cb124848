"""`pilothouse privacy erase` on PostgreSQL: the subject's text is gone, numbers stay, proven."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from pilothouse.audit.log import read_rows
from pilothouse.store.db import create_engine
from tests.support.gateway import base_config, running_gateway, write_config

pytestmark = pytest.mark.integration

ALICE = "Alice here: my diagnosis is hypothyroidism, mail alice.w@example.org"
BOB = "Bob asks about the weather in Lisbon tomorrow afternoon"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pilothouse.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def dump_store(url: str) -> str:
    """Every row of every table as text: what an auditor's grep would see."""

    async def go() -> str:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                names = (
                    await conn.execute(
                        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                    )
                ).scalars()
                out = []
                for name in list(names):
                    rows = await conn.execute(text(f'SELECT * FROM "{name}"'))
                    out.extend(json.dumps(list(r), default=str) for r in rows)
                return "\n".join(out)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def usage_numbers(url: str) -> list[tuple[Any, ...]]:
    from pilothouse.store.tables import usage_records as u

    async def go() -> list[tuple[Any, ...]]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                q = select(u.c.request_id, u.c.input_tokens, u.c.output_tokens, u.c.cost_pico)
                return [tuple(r) for r in await conn.execute(q.order_by(u.c.request_id))]
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_erase_user_leaves_no_trace_of_their_text(postgres_url: str, tmp_path: Path) -> None:
    cfg = base_config(
        postgres_url, tmp_path, telemetry={"capture_content": "full"},
        prices={"gpt-4o-mini": {"input": "0.15", "output": "0.60"}},
    )  # fmt: skip
    with running_gateway(cfg) as gw:
        key = gw.create_key()
        for who, content in (("alice", ALICE), ("alice", ALICE + " again"), ("bob", BOB)):
            resp = httpx.post(
                gw.url + "/v1/chat/completions",
                json={"model": "chat", "messages": [{"role": "user", "content": content}]},
                headers={"Authorization": f"Bearer {key}",
                         "x-pilothouse-metadata": json.dumps({"user": who})},
                timeout=30,
            )  # fmt: skip
            assert resp.status_code == 200
        with gw.admin() as admin:
            admin.get("/admin/usage")
            admin.get("/admin/traces")
    before = dump_store(postgres_url)
    assert "hypothyroidism" in before and "Lisbon" in before
    numbers = usage_numbers(postgres_url)
    config = write_config(tmp_path / "ph.yaml", cfg)

    done = cli("privacy", "erase", "--user", "alice", "--config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "traces" in done.stdout and "residue scan: clean" in done.stdout

    after = dump_store(postgres_url)
    assert "hypothyroidism" not in after and "alice.w@example.org" not in after
    assert '"alice"' not in after  # the user id itself is personal data
    assert "Lisbon" in after  # other users untouched
    assert usage_numbers(postgres_url) == numbers  # usage and cost kept exactly

    async def audit() -> list[dict[str, Any]]:
        engine = create_engine(postgres_url)
        try:
            return await read_rows(engine)
        finally:
            await engine.dispose()

    rows = asyncio.run(audit())
    assert any(r["action"] == "privacy.erase" for r in rows)

    again = cli("privacy", "erase", "--user", "nobody-like-this", "--config", str(config))
    assert again.returncode == 3 and "nothing to erase" in again.stdout
