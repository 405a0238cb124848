"""Real gateways for tests: uvicorn in a thread, or `pilothouse serve` in a subprocess."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

from pilothouse.config.load import parse_settings
from pilothouse.config.schema import Settings
from pilothouse.gateway.app import build_app
from pilothouse.gateway.runtime import Runtime

ADMIN_KEY = "test-admin-key-" + "x" * 16
UPSTREAM_KEY = "sk-test-upstream-key"
# The config refuses literal secrets, so test configs name these variables (`env:NAME`);
# set here for this process and every `pilothouse serve` child it starts.
TEST_SECRETS = {"PH_TEST_ADMIN_KEY": ADMIN_KEY, "PH_TEST_UPSTREAM_KEY": UPSTREAM_KEY}
for _name, _value in TEST_SECRETS.items():
    os.environ.setdefault(_name, _value)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_config(store_url: str, tmp: Path, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "server": {"admin_key": "env:PH_TEST_ADMIN_KEY", "sse_keepalive_s": 5.0},
        "store": {
            "url": store_url,
            "spool_path": str(tmp / "spool.jsonl"),
            "flush_interval_s": 0.05,
        },
        "routing": {"backoff_base_s": 0.001, "backoff_max_s": 0.01},
        "providers": {"chaos": {"type": "chaos"}},
        "models": {"chat": {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}]}},
    }
    for section, value in extra.items():
        if isinstance(value, dict) and isinstance(cfg.get(section), dict):
            cfg[section] = {**cfg[section], **value}
        else:
            cfg[section] = value
    return cfg


@dataclass
class ThreadedGateway:
    """uvicorn + the real app on a free port, served from a background thread."""

    settings: Settings
    port: int = field(default_factory=free_port)
    runtime: Runtime | None = None

    def __post_init__(self) -> None:
        self.runtime = Runtime(self.settings)
        app = build_app(self.settings, runtime=self.runtime)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            loop="asyncio",
            log_level="warning",
            lifespan="on",
            h11_max_incomplete_event_size=self.settings.server.max_header_bytes,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadedGateway:
        self.thread.start()
        deadline_polls = 0
        while not self.server.started:
            deadline_polls += 1
            self.thread.join(0.01)
            if not self.thread.is_alive():
                raise RuntimeError("gateway failed to start")
            if deadline_polls > 6000:
                raise RuntimeError("gateway did not start within 60 s")
        return self

    def server_loop(self) -> Any:
        """The event loop the server thread runs (for run_coroutine_threadsafe)."""
        import asyncio

        assert self.runtime is not None
        loop = self.runtime.loop
        assert isinstance(loop, asyncio.AbstractEventLoop)
        return loop

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
        )

    def create_key(self, **spec: Any) -> str:
        with self.admin() as client:
            resp = client.post("/admin/keys", json={"name": "test", **spec})
            assert resp.status_code == 201, resp.text
            return str(resp.json()["key"])


def failover_config(
    store_url: str, tmp: Path, models: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """A gateway whose ``chat`` alias fails over (503 upstream, then a healthy one).

    Also a cached alias; ``models`` adds aliases (``down`` always fails, ``chaos`` answers).
    """
    return base_config(
        store_url,
        tmp,
        providers={
            "chaos": {"type": "chaos"},
            "down": {"type": "chaos", "error_rate": 1.0, "error_status": 503},
        },
        models={
            "chat": {
                "targets": [
                    {"provider": "down", "model": "gpt-4o-mini"},
                    {"provider": "chaos", "model": "gpt-4o-mini"},
                ]
            },
            "cached": {"targets": [{"provider": "chaos", "model": "m"}], "cache": {"ttl_s": 60}},
            **(models or {}),
        },
        **extra,
    )


@contextlib.contextmanager
def running_gateway(config: dict[str, Any]) -> Iterator[ThreadedGateway]:
    gateway = ThreadedGateway(parse_settings(config, source="<test>")).start()
    try:
        yield gateway
    finally:
        gateway.stop()


@dataclass
class ProcessGateway:
    """`pilothouse serve` as a child process: for signals and multi-replica tests."""

    config_path: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)
    user: int | None = None  # run as this uid/gid with no supplementary groups (when root)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ProcessGateway:
        args = ["serve", "--config", str(self.config_path), "--port", str(self.port)]
        return self.start_command(args, timeout=timeout)

    def start_command(
        self, args: list[str], *, cwd: Path | None = None, timeout: float = 60.0
    ) -> ProcessGateway:
        """Run ``pilothouse ARGS`` and wait for its ready banner."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pilothouse.cli.main", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **self.env},
            cwd=cwd,
            user=self.user,
            group=self.user,
            extra_groups=None if self.user is None else [],
        )
        assert self.proc.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, args=(lines,), daemon=True)
        self._reader.start()
        while True:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                self.stop()  # never leave a half-started gateway behind
                raise RuntimeError(
                    f"gateway did not become ready: {''.join(self.output)}"
                ) from None
            if line == "":
                raise RuntimeError(f"gateway exited: {''.join(self.output)}")
            if "pilothouse ready on" in line:
                return self

    def _pump(self, lines: queue.Queue[str]) -> None:
        """Copy the child's output into ``self.output`` line by line ('' = end of output)."""
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            lines.put(line)
        lines.put("")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout)
        return code

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.wait(30)
            if self.proc.poll() is None:
                self.proc.kill()


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path
