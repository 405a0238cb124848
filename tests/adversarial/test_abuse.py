"""A hostile tenant against a real gateway: stalled uploads, huge headers, guessed keys.

Real sockets on a threaded gateway with the chaos provider upstream. A stalled
upload is what an attacker sends: full headers promising a 1,000-byte body,
then 8 bytes, then nothing.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import ThreadedGateway, base_config, running_gateway

pytestmark = pytest.mark.integration
BODY = b'{"model": "chat", "messages": [{"role": "user", "content": "hi"}]}'


def stalled_upload(port: int, key: str, sent: int = 8) -> socket.socket:
    """Open a chat request whose body never finishes arriving."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n"
    )
    sock.sendall(head.encode() + BODY[:sent])
    return sock


def read_status(sock: socket.socket) -> tuple[int, bytes]:
    """The status and raw head+body the gateway answered on ``sock`` (blocks until it does)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(data.split(b" ", 2)[1]), head + b"\r\n\r\n" + body


def wait_until(condition: Any, what: str, limit_s: float = 30.0) -> None:
    """Poll a condition the gateway's own state exposes (not a sleep standing in for one)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


def chat(gateway: ThreadedGateway, key: str) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        content=BODY,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=30,
    )


@contextlib.contextmanager
def gateway_with(tmp_path: Path, **server: Any) -> Iterator[ThreadedGateway]:
    config = base_config(f"sqlite:///{tmp_path / 'abuse.db'}", tmp_path, server=server)
    with running_gateway(config) as gateway:
        yield gateway


def key_id(gateway: ThreadedGateway, secret: str) -> str:
    with gateway.admin() as admin:
        keys = admin.get("/admin/keys").json()["data"]
    return next(k["id"] for k in keys if secret.startswith(k["key_prefix"]))


def test_stalled_uploads_from_one_key_do_not_starve_other_keys(tmp_path: Path) -> None:
    # A tiny gateway: before the fix, 4 stalled uploads held all its slots (503 for all).
    with gateway_with(tmp_path, max_in_flight=4, body_timeout_s=120) as gateway:
        attacker = gateway.create_key(name="attacker", max_concurrency=6)
        victim = gateway.create_key(name="victim")
        attacker_id = key_id(gateway, attacker)
        held = [stalled_upload(gateway.port, attacker) for _ in range(6)]
        assert gateway.runtime is not None
        slots = gateway.runtime.key_slots
        wait_until(lambda: slots.held(attacker_id) == 6, "six stalled uploads hold key slots")
        try:
            # Past its own cap the attacker is refused at once with 429 + Retry-After.
            extra = stalled_upload(gateway.port, attacker)
            status, raw = read_status(extra)
            extra.close()
            assert status == 429
            assert b"retry-after:" in raw.lower()
            assert b"concurrency_limit_exceeded" in raw
            # Everyone else is served while the sockets stay open.
            answers = [chat(gateway, victim).status_code for _ in range(10)]
            assert answers == [200] * 10
            assert gateway.runtime.in_flight == 0  # stalled bodies hold no gateway slot
        finally:
            for sock in held:
                sock.close()
        wait_until(lambda: slots.held(attacker_id) == 0, "closed uploads give their slots back")
        assert chat(gateway, attacker).status_code == 200


def test_default_per_key_cap_applies_without_a_key_field(tmp_path: Path) -> None:
    config = base_config(
        f"sqlite:///{tmp_path / 'abuse.db'}",
        tmp_path,
        server={"body_timeout_s": 120},
        limits={"max_concurrency_per_key": 2},
    )
    with running_gateway(config) as gateway:
        attacker = gateway.create_key(name="attacker")
        held = [stalled_upload(gateway.port, attacker) for _ in range(2)]
        try:
            assert gateway.runtime is not None
            slots = gateway.runtime.key_slots
            attacker_id = key_id(gateway, attacker)
            wait_until(lambda: slots.held(attacker_id) == 2, "two stalled uploads")
            assert chat(gateway, attacker).status_code == 429
        finally:
            for sock in held:
                sock.close()


def test_a_body_that_never_finishes_gets_408(tmp_path: Path) -> None:
    with gateway_with(tmp_path, body_timeout_s=0.3) as gateway:
        key = gateway.create_key(name="slow")
        sock = stalled_upload(gateway.port, key)
        try:
            status, raw = read_status(sock)
        finally:
            sock.close()
        assert status == 408
        assert b"body_timeout" in raw
        assert chat(gateway, key).status_code == 200  # its slot was given back


def raw_request(port: int, headers: list[tuple[str, str]]) -> int:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers)
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: x\r\n{lines}\r\n".encode())
        return read_status(sock)[0]
    finally:
        sock.close()


def test_too_many_or_too_large_headers_get_431(tmp_path: Path) -> None:
    with gateway_with(tmp_path, max_header_count=50, max_header_bytes=8192) as gateway:
        assert raw_request(gateway.port, [(f"x-h{i}", "v") for i in range(10)]) == 200
        assert raw_request(gateway.port, [(f"x-h{i}", "v") for i in range(80)]) == 431
        assert raw_request(gateway.port, [("x-big", "a" * 9000)]) == 431
        response = httpx.get(gateway.url + "/healthz", headers={"x-big": "a" * 9000})
        assert response.status_code == 431
        assert response.json()["error"]["code"] == "request_header_fields_too_large"


def test_max_concurrency_is_validated_and_shown(tmp_path: Path) -> None:
    with gateway_with(tmp_path) as gateway, gateway.admin() as admin:
        bad = admin.post("/admin/keys", json={"name": "k", "max_concurrency": "lots"})
        assert bad.status_code == 400
        assert bad.json()["error"]["param"] == "max_concurrency"
        made = admin.post("/admin/keys", json={"name": "k", "max_concurrency": 3})
        assert made.status_code == 201
        listed = admin.get("/admin/keys").json()["data"]
        assert [k["max_concurrency"] for k in listed if k["name"] == "k"] == [3]


def test_chaos_serve_exits_on_sigterm_while_a_connection_hangs(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from tests.support.gateway import free_port

    port = free_port()
    config = tmp_path / "chaos.yaml"
    config.write_text("timeout_rate: 1.0\n")  # every chat call hangs for an hour
    args = ["chaos", "serve", "--port", str(port), "--config", str(config)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pilothouse.cli.main", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    hung: socket.socket | None = None
    try:
        wait_until(
            lambda: (
                httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 200
                if proc.poll() is None and _accepting(port)
                else False
            ),
            "chaos serve is up",
        )
        hung = socket.create_connection(("127.0.0.1", port), timeout=30)
        body = b'{"model": "m", "messages": []}'
        hung.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)  # before the fix: hung for 60 s+
    finally:
        if hung is not None:
            hung.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _accepting(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False
