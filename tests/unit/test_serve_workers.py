"""`serve --workers N`: workers get time to start on a busy host (uvicorn's 5 s is too
short), and the shared socket listens before any worker does."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml
from typer.testing import CliRunner

from pilothouse.cli import serve as serve_module
from pilothouse.cli.main import app
from tests.support.gateway import free_port


class FakeSupervisor:
    """Stands in for uvicorn's Multiprocess: records what the workers would get."""

    def __init__(self, seen: dict[str, Any]) -> None:
        self.seen = seen

    def __call__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> FakeSupervisor:
        self.seen.update(config=config, sockets=sockets)
        self.seen["accepting"] = [
            s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) for s in sockets
        ]
        return self

    def run(self) -> None:
        for sock in self.seen["sockets"]:
            sock.close()


def serve_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **server: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(serve_module, "Multiprocess", FakeSupervisor(seen))
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
    result = CliRunner().invoke(
        app, ["serve", "--config", str(path), "--workers", "2", "--port", str(free_port())]
    )
    assert result.exit_code == 0, result.output
    return seen


def test_workers_get_a_generous_start_and_ping_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = serve_workers(tmp_path, monkeypatch)["config"]
    assert config.workers == 2 and config.factory is True
    assert config.timeout_worker_healthcheck == 60


def test_the_worker_timeout_is_configurable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = serve_workers(tmp_path, monkeypatch, worker_healthcheck_s=120)["config"]
    assert config.timeout_worker_healthcheck == 120


def test_the_shared_socket_listens_before_any_worker_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers print the ready line before they call listen(): a client that believed
    it was refused. With the supervisor listening, it waits in the backlog instead."""
    seen = serve_workers(tmp_path, monkeypatch)
    assert seen["accepting"] == [1]
