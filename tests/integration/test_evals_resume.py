"""A killed eval run loses no finished case: SIGKILL mid-run, then `--resume` finishes it
without calling the model again for what was already on disk."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pilothouse.cli.main import app
from tests.support.gateway import write_config
from tests.support.ledger import stored_rows

pytestmark = pytest.mark.integration

CASES = 24
KILL_AFTER = 6


def finished(db: Path) -> int:
    """Results committed so far, read the way any other process would see them."""
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM eval_results").fetchone()[0])
        except sqlite3.OperationalError:  # tables not created yet
            return 0


def test_a_killed_run_resumes_without_redoing_finished_cases(tmp_path: Path) -> None:
    db = tmp_path / "evals.db"
    config = write_config(
        tmp_path / "gateway.yaml",
        {
            "store": {"url": f"sqlite:///{db}", "spool_path": str(tmp_path / "spool.jsonl")},
            # Each call takes 0.2 s, so the run is still going when we kill it.
            "providers": {"slow": {"type": "chaos", "reply": "echo", "latency_ms": {"value": 200}}},
            "models": {"echo": {"targets": [{"provider": "slow", "model": "echo-1"}]}},
        },
    )
    rows = "".join(
        json.dumps({"id": f"c{i:02d}", "input": f"word{i}", "expected": f"word{i}"}) + "\n"
        for i in range(CASES)
    )
    (tmp_path / "cases.jsonl").write_text(rows)
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: echo\ntarget: {model: echo}\ndataset: cases.jsonl\n"
        "scorers: [{type: exact}]\nconcurrency: 2\n"
        "gates: [{metric: exact.pass_rate, min: 1.0}]\n"
    )

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pilothouse.cli.main",
            "eval",
            "run",
            str(suite),
            "--config",
            str(config),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while finished(db) < KILL_AFTER:  # poll the store the run commits to
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no progress on disk"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    with sqlite3.connect(db) as conn:
        ((run_id, status),) = conn.execute("SELECT id, status FROM eval_runs").fetchall()
        before = dict(conn.execute("SELECT case_id, sample FROM eval_results").fetchall())
    assert status == "running"  # killed: nobody could mark it
    assert KILL_AFTER <= len(before) < CASES

    resumed = CliRunner().invoke(
        app,
        [
            "eval",
            "run",
            str(suite),
            "--config",
            str(config),
            "--resume",
            run_id,
            "--json",
            str(tmp_path / "r.json"),
        ],
    )
    assert resumed.exit_code == 0, resumed.output

    report = json.loads((tmp_path / "r.json").read_text())
    assert report["run"]["id"] == run_id and report["run"]["status"] == "completed"
    samples = {c["case"]["id"]: c["samples"] for c in report["cases"]}
    assert sorted(samples) == [f"c{i:02d}" for i in range(CASES)]
    assert all(len(s) == 1 for s in samples.values())
    for case_id, raw in before.items():  # finished cases kept as they were
        kept = json.loads(raw) if isinstance(raw, str) else raw
        assert samples[case_id][0]["request_ids"] == kept["request_ids"]
    # ...and the resumed run never asked the model for them again: every ledger row
    # for a finished case is the original call. (The killed process may not have
    # flushed its last usage rows, so "exactly once" cannot be read off the ledger.)
    ledger = [r for r in stored_rows(f"sqlite:///{db}") if r["status"] == 200]
    for case_id, raw in before.items():
        kept = json.loads(raw) if isinstance(raw, str) else raw
        calls = [r for r in ledger if r["metadata"]["eval_case"] == case_id]
        assert all(r["request_id"] in kept["request_ids"] for r in calls), case_id
    resumed_cases = {r["metadata"]["eval_case"] for r in ledger} - set(before)
    assert resumed_cases == {f"c{i:02d}" for i in range(CASES)} - set(before)
