"""A SIGKILL cannot lose the usage record of a request that was answered.

Rows wait in memory for the ledger's next batch; the write-ahead journal
(store/journal.py) keeps them on disk until they are stored, and the next start
adopts a dead process's journal. The flush interval is made long here so every
answered request is still only in memory when the process is killed.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import ADMIN_KEY, ProcessGateway, base_config, free_port, write_config
from tests.support.ledger import stored_rows

pytestmark = pytest.mark.integration


def gateway(tmp_path: Path, store_url: str, **store: Any) -> ProcessGateway:
    config = base_config(
        store_url,
        tmp_path,
        store={
            "url": store_url,
            "spool_path": str(tmp_path / "spool.jsonl"),
            "flush_interval_s": 30.0,
            "batch_size": 10_000,
            **store,
        },
    )
    path = write_config(tmp_path / "pilothouse.yaml", config)
    return ProcessGateway(path, free_port(), {"PILOTHOUSE_ADMIN_KEY": ADMIN_KEY})


def answered(gw: ProcessGateway, count: int) -> list[str]:
    key = httpx.post(
        gw.url + "/admin/keys",
        json={"name": "k"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ).json()["key"]
    ids = []
    with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {key}"}) as client:
        for i in range(count):
            body = {"model": "chat", "messages": [{"role": "user", "content": f"q{i}"}]}
            resp = client.post("/v1/chat/completions", json=body)
            assert resp.status_code == 200
            ids.append(resp.headers["x-request-id"])
    return ids


def test_answered_requests_keep_their_usage_records_across_a_sigkill(
    tmp_path: Path, store_url: str
) -> None:
    first = gateway(tmp_path, store_url).start()
    try:
        ids = answered(first, 25)
        assert not any(r["request_id"] in ids for r in stored_rows(store_url))  # all in memory
        assert first.proc is not None
        os.kill(first.proc.pid, signal.SIGKILL)
        first.wait()
    finally:
        first.stop()
    second = gateway(tmp_path, store_url, flush_interval_s=0.05).start()
    try:
        rows = [r for r in stored_rows(store_url) if r["request_id"] in ids]
    finally:
        second.stop()
    assert sorted(r["request_id"] for r in rows) == sorted(ids)  # each exactly once
    assert not list(tmp_path.glob("spool.journal.*.jsonl"))  # adopted, then gone


def test_without_the_journal_a_sigkill_loses_them(tmp_path: Path) -> None:
    """The failure the journal exists for, shown with it switched off."""
    store_url = f"sqlite:///{tmp_path}/ph.db"
    first = gateway(tmp_path, store_url, journal=False).start()
    try:
        ids = answered(first, 5)
        assert first.proc is not None
        os.kill(first.proc.pid, signal.SIGKILL)
        first.wait()
    finally:
        first.stop()
    second = gateway(tmp_path, store_url, journal=False).start()
    try:
        rows = [r for r in stored_rows(store_url) if r["request_id"] in ids]
    finally:
        second.stop()
    assert rows == []


def test_a_clean_stop_leaves_no_journal(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path}/ph.db"
    gw = gateway(tmp_path, store_url).start()
    try:
        ids = answered(gw, 3)
        assert list(tmp_path.glob("spool.journal.*.jsonl"))
    finally:
        gw.stop()
    assert not list(tmp_path.glob("spool.journal.*.jsonl"))
    assert {r["request_id"] for r in stored_rows(store_url)} >= set(ids)
