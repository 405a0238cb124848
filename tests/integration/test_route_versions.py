"""Route versions: a reload whose `models` differ stores one (who: the admin principal for
/admin/reload, `signal` for SIGHUP); `/readyz` and the metric carry the serving hash;
`pilothouse routes list|show|diff` read them."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.integration.test_releases_cli import ADMIN, cli
from tests.support.gateway import ProcessGateway, base_config, free_port, write_config

pytestmark = pytest.mark.integration


def _config(store_url: str, tmp_path: Path, upstream: str) -> dict[str, object]:
    config = base_config(store_url, tmp_path)
    config["models"] = {"chat": {"targets": [{"provider": "chaos", "model": upstream}]}}
    return config


def _ready_hash(gw: ProcessGateway) -> str:
    return str(httpx.get(gw.url + "/readyz", timeout=10).json()["route_version"])


def _routes(cfg: Path) -> list[list[str]]:
    listed = cli("routes", "list", "-c", str(cfg))
    assert listed.returncode == 0, listed.stderr
    return [line.split() for line in listed.stdout.splitlines() if line.strip()]


def test_reloads_store_route_versions_with_who_changed_them(store_url: str, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", _config(store_url, tmp_path, "gpt-4o-mini"))
    gw = ProcessGateway(cfg, free_port(), {}).start()
    try:
        first = _ready_hash(gw)
        olga = httpx.post(
            gw.url + "/admin/keys", headers=ADMIN, json={"name": "olga", "role": "operator"}
        ).json()["key"]
        as_olga = {"Authorization": f"Bearer {olga}"}

        write_config(cfg, _config(store_url, tmp_path, "gpt-4o"))
        assert httpx.post(gw.url + "/admin/reload", headers=as_olga, timeout=30).is_success
        second = _ready_hash(gw)
        assert second != first
        # The same models again: no new version.
        assert httpx.post(gw.url + "/admin/reload", headers=as_olga, timeout=30).is_success
        assert [(r[0], r[2]) for r in _routes(cfg)] == [
            (second[:12], "olga"),
            (first[:12], "startup"),
        ]

        write_config(cfg, _config(store_url, tmp_path, "gpt-4.1"))
        gw.signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while _ready_hash(gw) == second and time.monotonic() < deadline:
            pass
        third = _ready_hash(gw)
        assert third not in (first, second)
        assert [r[2] for r in _routes(cfg)] == ["signal", "olga", "startup"]

        metrics = httpx.get(gw.url + "/metrics", headers=ADMIN, timeout=10).text
        assert f'pilothouse_route_version_info{{hash="{third}"}} 1.0' in metrics

        shown = cli("routes", "show", third[:12], "-c", str(cfg))
        assert shown.returncode == 0, shown.stderr
        version = orjson.loads(shown.stdout)
        assert (version["hash"], version["actor"]) == (third, "signal")
        assert version["models"]["chat"]["targets"][0]["model"] == "gpt-4.1"
        diff = cli("routes", "diff", first[:12], third[:12], "-c", str(cfg))
        assert diff.returncode == 0, diff.stderr
        assert '-        "model": "gpt-4o-mini"' in diff.stdout
        assert '+        "model": "gpt-4.1"' in diff.stdout
        unknown = cli("routes", "diff", first[:12], "nope", "-c", str(cfg))
        assert unknown.returncode == 2 and "no route version 'nope'" in unknown.stderr
    finally:
        gw.stop()
