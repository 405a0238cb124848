"""The image's exact command, config and probes, run as a local process.

No Docker daemon here, so the container is reproduced: the Dockerfile's
ENTRYPOINT + CMD with its baked-in config, run as the image's numeric user in its
WORKDIR (the only writable directory), then its HEALTHCHECK command and the
Kubernetes probes, a real request on the bundled model, and SIGTERM.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.deploy import DEPLOY, ROOT, read_runtime_stage
from tests.support.gateway import ProcessGateway, free_port

pytestmark = pytest.mark.integration
ADMIN = "container-admin-key-" + "y" * 16


@pytest.fixture
def rootfs() -> Iterator[Path]:
    # Not tmp_path: pytest's base directory is private to the invoking user.
    path = Path(tempfile.mkdtemp(prefix="ph-container-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _k8s_probe_paths() -> set[str]:
    deployment = yaml.safe_load((DEPLOY / "k8s" / "base" / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {container[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe")}


def _can_run_as(uid: int) -> bool:
    """Whether the image's user could run this interpreter (not if it lives under /root)."""
    try:
        probe = [sys.executable, "-c", "import pilothouse"]
        return subprocess.run(probe, user=uid, group=uid, extra_groups=[]).returncode == 0
    except PermissionError:
        return False


def test_container_command_serves_probes_and_drains(rootfs: Path) -> None:
    stage = read_runtime_stage()
    uid, _, gid = stage.user.partition(":")
    port = free_port()

    def inside(path: str) -> str:  # a path in the container → the same path under rootfs
        return str(rootfs / path.lstrip("/"))

    # The files the image ships, at their image paths (read-only to the image user).
    for src, dest in stage.copies:
        target = Path(inside(dest))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / src, target)
    config_path = stage.cmd[stage.cmd.index("--config") + 1]
    config = Path(inside(config_path))
    # Only what a container runtime changes: the filesystem root and the published port.
    text = config.read_text().replace(stage.workdir, inside(stage.workdir))
    config.write_text(text.replace("host: 0.0.0.0", "host: 127.0.0.1").replace("4000", str(port)))
    workdir = Path(inside(stage.workdir))
    workdir.mkdir(parents=True)
    as_root = os.geteuid() == 0 and _can_run_as(int(uid))
    if as_root:
        os.chown(workdir, int(uid), int(gid or uid))
    workdir.chmod(0o750)

    assert stage.entrypoint == ["pilothouse"]
    args = [a if a != config_path else str(config) for a in stage.cmd]
    env = {**stage.env, "PILOTHOUSE_ADMIN_KEY": ADMIN, "HOME": str(workdir)}
    gateway = ProcessGateway(config, port, env, user=int(uid) if as_root else None)
    gateway.start_command(args, cwd=workdir, timeout=120)
    try:
        # The image's own HEALTHCHECK, verbatim but for the interpreter and the port.
        check = [sys.executable if part == "python" else part for part in stage.healthcheck]
        check = [part.replace(":4000/", f":{port}/") for part in check]
        assert subprocess.run(check, timeout=30).returncode == 0
        for path in _k8s_probe_paths():
            assert httpx.get(f"{gateway.url}{path}", timeout=10).status_code == 200, path
        admin = {"Authorization": f"Bearer {ADMIN}"}
        created = httpx.post(
            f"{gateway.url}/admin/keys", json={"name": "c"}, headers=admin, timeout=10
        )
        assert created.status_code == 201, created.text
        reply = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {created.json()['key']}"},
            json={
                "model": "local",
                "messages": [{"role": "user", "content": "Hi"}],
                "max_tokens": 4,
            },
            timeout=120,
        )
        assert reply.status_code == 200, reply.text
    finally:
        gateway.signal(signal.SIGTERM)
        code = gateway.wait(60)
    # uvicorn re-raises the signal once it has shut down cleanly.
    assert code in (0, -signal.SIGTERM), "".join(gateway.output)
    assert "Application shutdown complete" in "".join(gateway.output)
    # Everything the gateway wrote is in WORKDIR, owned by the image's user.
    written = sorted(p.name for p in workdir.iterdir())
    assert "pilothouse.db" in written, written
    if as_root:
        assert {p.stat().st_uid for p in workdir.iterdir()} == {int(uid)}
    assert sorted(p.name for p in config.parent.iterdir()) == [config.name]
