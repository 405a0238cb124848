"""Three replicas behind a real load balancer (haproxy), sharing PostgreSQL and Redis.

Under steady load one replica is SIGTERMed: it drains, haproxy's health check
on ``/readyz`` takes it out and connection refusals are retried on another
replica, so no client sees a failure. Then one is SIGKILLed: only the requests
it held in flight may fail. After it restarts (and adopts its usage journal),
every request a client saw succeed has exactly one usage record.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import REQUIRE
from tests.support.gateway import ADMIN_KEY, ProcessGateway, base_config, free_port, write_config
from tests.support.ledger import stored_rows

pytestmark = pytest.mark.integration
WORKERS = 6


def haproxy_config(front: int, backends: list[int]) -> str:
    servers = "\n".join(
        f"  server r{i} 127.0.0.1:{port} check" for i, port in enumerate(backends, 1)
    )
    return f"""
global
  maxconn 2000
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  # A refused connection or a draining replica's 503 is retried elsewhere; the body
  # is buffered so the retry can resend it. Nothing that reached a gateway's
  # handler is retried (no retry on empty or reset responses).
  option http-buffer-request
  retries 3
  option redispatch 1
  retry-on conn-failure 503
  http-reuse never
frontend gateway
  bind 127.0.0.1:{front}
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  # A slow answer on a busy machine is not a dead replica: checks get 2 s, and a
  # replica leaves after 2 failures (a drained one refuses connections at once).
  timeout check 2s
  default-server inter 200ms fall 2 rise 2
{servers}
"""


@contextlib.contextmanager
def haproxy(tmp_path: Path, front: int, backends: list[int]) -> Iterator[str]:
    binary = shutil.which("haproxy")
    if binary is None:
        if REQUIRE:
            pytest.fail("haproxy is not installed and PILOTHOUSE_REQUIRE_SERVICES=1")
        pytest.skip("haproxy is not installed")
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(haproxy_config(front, backends))
    proc = subprocess.Popen([binary, "-db", "-f", str(cfg)], stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{front}"
    try:
        deadline = time.monotonic() + 30
        while True:  # ready when the frontend answers through a healthy replica
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "haproxy never became ready"
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class Load:
    """Closed-loop clients through the balancer, recording every outcome."""

    url: str
    key: str
    ok: list[str] = field(default_factory=list)  # x-request-id of each success
    failed: list[tuple[float, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    progress: threading.Condition = field(default_factory=threading.Condition)

    def worker(self, n: int) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as client:
            i = 0
            while not self.stop.is_set():
                i += 1
                body = {"model": "chat", "messages": [{"role": "user", "content": f"w{n} {i}"}]}
                try:
                    resp = client.post("/v1/chat/completions", json=body)
                    outcome = resp.headers.get("x-request-id") if resp.status_code == 200 else None
                    detail = f"{resp.status_code} {resp.text[:200]}"
                except httpx.HTTPError as exc:
                    outcome, detail = None, repr(exc)
                with self.progress:
                    if outcome is not None:
                        self.ok.append(outcome)
                    else:
                        self.failed.append((time.monotonic(), detail))
                    self.progress.notify_all()

    def wait_for(self, successes: int) -> None:
        """Block until ``successes`` more requests succeeded (no sleeping: a condition)."""
        with self.progress:
            target = len(self.ok) + successes
            assert self.progress.wait_for(lambda: len(self.ok) >= target, timeout=120)


def test_sigterm_drops_nothing_and_sigkill_only_its_in_flight(
    tmp_path: Path, postgres_url: str, redis_url: str, redis_prefix: str
) -> None:
    ports = [free_port() for _ in range(3)]
    replicas = []
    for i, port in enumerate(ports):
        work = tmp_path / f"r{i}"
        work.mkdir()
        config = base_config(
            postgres_url,
            work,
            redis={"url": redis_url, "prefix": redis_prefix},
            # drain_delay_s covers haproxy's 2 failed checks 200 ms apart, with margin.
            server={
                "admin_key": "env:PILOTHOUSE_ADMIN_KEY",
                "drain_timeout_s": 20,
                "drain_delay_s": 1.5,
            },
            providers={"chaos": {"type": "chaos", "latency_ms": {"value": 20}}},
        )
        path = write_config(work / "pilothouse.yaml", config)
        replicas.append(ProcessGateway(path, port, {"PILOTHOUSE_ADMIN_KEY": ADMIN_KEY}))
    try:
        for replica in replicas:
            replica.start()
        key = httpx.post(
            replicas[2].url + "/admin/keys",
            json={"name": "load"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ).json()["key"]
        with haproxy(tmp_path, free_port(), ports) as url:
            load = Load(url, key)
            threads = [threading.Thread(target=load.worker, args=(n,)) for n in range(WORKERS)]
            for t in threads:
                t.start()
            try:
                load.wait_for(60)
                replicas[0].signal(signal.SIGTERM)  # drains; the balancer routes around it
                replicas[0].wait(60)
                load.wait_for(60)
                assert load.failed == [], load.failed[:5]
                killed_at = time.monotonic()
                assert replicas[1].proc is not None
                os.kill(replicas[1].proc.pid, signal.SIGKILL)
                replicas[1].wait(30)
                load.wait_for(60)
            finally:
                load.stop.set()
                for t in threads:
                    t.join(60)
        # Only what the killed replica held in flight may have failed: at most one per client.
        assert len(load.failed) <= WORKERS, load.failed
        assert all(at >= killed_at for at, _ in load.failed)
        replicas[1].start()  # a restart adopts the usage journal of the killed process
        for replica in replicas[1:]:
            httpx.get(
                replica.url + "/admin/usage", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
            )  # flushes its ledger
        seen = [r["request_id"] for r in stored_rows(postgres_url)]
        ok = set(load.ok)
        assert len(ok) == len(load.ok)
        counts = {rid: 0 for rid in ok}
        for rid in seen:
            if rid in counts:
                counts[rid] += 1
        missing = [rid for rid, n in counts.items() if n != 1]
        assert missing == [], f"{len(missing)} of {len(ok)} answered requests lack one record"
    finally:
        for replica in replicas:
            replica.stop()
