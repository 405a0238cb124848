"""`pilothouse rag ...` with the issue's config as written, embedding in process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pilothouse.cli.main import app

pytestmark = pytest.mark.integration

ISSUE_CONFIG = (Path(__file__).parents[3] / "examples" / "rag" / "pilothouse.yaml").read_text()


def test_ingest_sync_search_status_and_verify_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "pilothouse.yaml"
    cfg.write_text(ISSUE_CONFIG)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text("# Leave\n\nStaff get 25 days of paid leave a year.\n")
    (docs / "vpn.html").write_text(
        "<html><head><title>VPN</title><script>var x=1</script></head>"
        "<body><h1>VPN</h1><p>Connect to the office VPN with WireGuard.</p></body></html>"
    )
    (docs / "notes.txt").write_text("Lunch is served at noon in the canteen.")
    runner = CliRunner()

    def rag(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["rag", *args, "--config", str(cfg)])
        return result.exit_code, result.output

    code, out = rag("ingest", "handbook", str(docs), "--acl", "staff", "--meta", "team=ops")
    assert code == 0, out
    assert "3 created" in out
    code, out = rag("ingest", "handbook", str(docs), "--acl", "staff", "--meta", "team=ops")
    assert code == 0 and "3 unchanged" in out, out

    code, out = rag("search", "handbook", "wireguard office vpn", "--groups", "staff", "--json")
    assert code == 0, out
    hits = json.loads(out)["data"]
    assert hits[0]["document_id"] == "vpn.html" and hits[0]["title"] == "VPN"
    assert "var x" not in hits[0]["text"] and hits[0]["metadata"] == {"team": "ops"}
    code, out = rag("search", "handbook", "wireguard", "--groups", "sales", "--json")
    assert json.loads(out)["data"] == []

    (docs / "notes.txt").unlink()
    code, out = rag(
        "ingest", "handbook", str(docs), "--acl", "staff", "--meta", "team=ops", "--sync"
    )
    assert code == 0 and "1 deleted" in out, out
    code, out = rag("status", "handbook", "--json")
    status = json.loads(out)
    assert status["documents"] == 2 and status["chunks"] >= 2 and status["orphans"] == 0
    assert status["embedder"] == "embed-local=minilm/all-minilm-l6-v2"
    assert status["embedder_version"] == 1 and status["stale_documents"] == []

    code, out = rag("verify-deleted", "handbook", "notes.txt", "--probe", "lunch canteen noon")
    assert code == 0, out
    code, out = rag("verify-deleted", "handbook", "leave.md")
    assert code == 1 and "still found" in out
