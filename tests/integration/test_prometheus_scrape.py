"""A real Prometheus scrapes /metrics with a bearer token and sees the gateway's series."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.gateway import base_config, free_port, running_gateway

pytestmark = pytest.mark.integration


def _prometheus() -> str:
    path = shutil.which("prometheus")
    if path is None:
        if os.environ.get("PILOTHOUSE_REQUIRE_SERVICES") == "1":
            pytest.fail("prometheus is not installed (apt-get install prometheus)")
        pytest.skip("prometheus is not installed")
    return path


def test_prometheus_scrapes_gateway_metrics(tmp_path: Path) -> None:
    binary = _prometheus()
    with running_gateway(base_config(f"sqlite:///{tmp_path}/t.db", tmp_path)) as gw:
        key = gw.create_key()
        scraper = gw.create_key(scopes=["metrics"])
        for _ in range(3):
            httpx.post(
                gw.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
            )
        port = free_port()
        (tmp_path / "prometheus.yml").write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": "pilothouse",
                            "authorization": {"credentials": scraper},
                            "static_configs": [{"targets": [f"127.0.0.1:{gw.port}"]}],
                        }
                    ],
                }
            )
        )
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            value = None
            deadline = time.monotonic() + 60  # bounded wait for the first scrapes
            while value is None and time.monotonic() < deadline:
                try:
                    resp = httpx.get(
                        f"http://127.0.0.1:{port}/api/v1/query",
                        params={
                            "query": 'sum(pilothouse_requests_total{alias="chat",status="200"})'
                        },
                    )
                    result = resp.json()["data"]["result"]
                    value = result[0]["value"][1] if result else None
                except (httpx.HTTPError, ValueError, KeyError):  # not ready yet
                    pass
                if value is None:
                    assert proc.poll() is None, "prometheus exited"
                    time.sleep(0.5)  # poll interval of a bounded wait on a condition
            assert value == "3", value
            targets = httpx.get(f"http://127.0.0.1:{port}/api/v1/targets").json()
            assert targets["data"]["activeTargets"][0]["health"] == "up"
        finally:
            proc.terminate()
            proc.wait(30)
