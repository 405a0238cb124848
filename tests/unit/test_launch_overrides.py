"""A reload re-reads the file; what `serve` set at launch (--port, --dev admin key) survives."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pilothouse.cli.serve import launch_overrides
from pilothouse.config.load import load_settings
from pilothouse.config.schema import Secret
from pilothouse.gateway.runtime import Runtime, restart_sections


def write(path: Path, **extra: object) -> Path:
    config = {
        "store": {"url": f"sqlite:///{path.parent}/l.db", "spool_path": str(path.parent / "s")},
        "providers": {"c": {"type": "chaos"}},
        "models": {"chat": {"targets": [{"provider": "c", "model": "m"}]}},
        **extra,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_reread_keeps_command_line_port_and_dev_admin_key(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml")
    dev_key = Secret("ph-admin-generated")
    overrides = launch_overrides(port=4123, workers=1, admin_key=dev_key)
    running = overrides(load_settings(str(path)))
    rt = Runtime(running, overrides)
    target = {"targets": [{"provider": "c", "model": "m"}]}
    write(path, models={"chat": target, "fresh": target})
    reread = rt.reread()
    assert sorted(reread.models) == ["chat", "fresh"]
    assert reread.server.port == 4123 and reread.store.migrate is False
    assert reread.server.admin_key is not None and reread.server.admin_key.get() == dev_key.get()
    assert restart_sections(running, reread) == []


def test_a_file_admin_key_wins_over_the_dev_one_and_a_changed_store_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "c.yaml")
    overrides = launch_overrides(port=4123, admin_key=Secret("ph-admin-generated"))
    running = overrides(load_settings(str(path)))
    write(path, server={"admin_key": "env:PH_TEST_ADMIN"}, store={"url": "sqlite:////tmp/x.db"})
    monkeypatch.setenv("PH_TEST_ADMIN", "ph-admin-from-file")
    reread = Runtime(running, overrides).reread()
    assert reread.server.admin_key is not None
    assert reread.server.admin_key.get() == "ph-admin-from-file"
    assert restart_sections(running, reread) == ["server", "store"]
