"""schemathesis against a live gateway: every documented operation, bounded examples.

Fails on any 5xx, any undocumented status code or content type, and any response
body that does not match its schema in /openapi.json.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.gateway import base_config, running_gateway

pytestmark = pytest.mark.integration
MODE = ["--mode", "all"]
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


def test_live_gateway_conforms_to_its_openapi_document(tmp_path: Path) -> None:
    config = base_config(f"sqlite:///{tmp_path}/p.db", tmp_path)
    with running_gateway(config) as gw:
        key = gw.create_key(scopes=["inference", "admin", "metrics"])
        argv = [
            str(Path(sys.executable).parent / "st"),
            "run",
            f"{gw.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {key}",
            "--checks",
            ",".join(CHECKS),
            "--max-examples",
            "12",
            "--seed",
            "13",
            "--workers",
            "1",
            "--max-redirects",
            "0",
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
            # /admin/reload re-reads the config; DELETE /admin/keys would revoke our key.
            "--exclude-path",
            "/admin/keys/{key_id}",
            "--no-color",
            "--report-dir",
            str(tmp_path / "report"),
        ]
        argv += MODE
        result = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    assert "operations" in result.stdout.lower() or "passed" in result.stdout.lower()
