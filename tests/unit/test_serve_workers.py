"""`serve --workers N` gives workers time to start on a busy host (uvicorn's 5 s is too short)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml
from typer.testing import CliRunner

from pilothouse.cli.main import app


def serve_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **server: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: seen.update(kw, target=target))
    # serve exports these for its workers; set-then-delete makes monkeypatch restore them.
    for name in (
        "PILOTHOUSE_CONFIG",
        "PILOTHOUSE_METRICS_DIR",
        "PILOTHOUSE_BIND",
        "PROMETHEUS_MULTIPROC_DIR",
    ):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    config = {
        "server": server,
        "store": {"url": f"sqlite:///{tmp_path}/w.db", "spool_path": str(tmp_path / "s.jsonl")},
        "redis": {"url": "redis://127.0.0.1:6379/0"},
        "telemetry": {"metrics_multiprocess_dir": str(tmp_path / "metrics")},
        "providers": {"c": {"type": "chaos"}},
        "models": {"chat": {"targets": [{"provider": "c", "model": "m"}]}},
    }
    path = tmp_path / "ph.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["serve", "--config", str(path), "--workers", "2"])
    assert result.exit_code == 0, result.output
    return seen


def test_workers_get_a_generous_start_and_ping_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = serve_workers(tmp_path, monkeypatch)
    assert seen["workers"] == 2 and seen["factory"] is True
    assert seen["timeout_worker_healthcheck"] == 60


def test_the_worker_timeout_is_configurable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = serve_workers(tmp_path, monkeypatch, worker_healthcheck_s=120)
    assert seen["timeout_worker_healthcheck"] == 120
