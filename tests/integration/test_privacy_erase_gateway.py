"""``POST /admin/privacy/erase`` in a running gateway: the stores the CLI cannot reach from
another process (the in-memory response cache, pseudonym mappings) and RAG documents are
erased too, and the residue scan covers them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from pilothouse.config.load import load_settings
from tests.support.gateway import ThreadedGateway, base_config
from tests.support.recording_upstream import Recorder, recording_upstream

pytestmark = pytest.mark.integration

PHRASE = "lapis-lazuli-9981 is my locker code"
OTHER = "the Lisbon office opens at nine"


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[tuple[ThreadedGateway, Recorder]]:
    with recording_upstream() as upstream:
        cfg = base_config(f"sqlite:///{tmp_path}/ph.db", tmp_path)
        target = {"provider": "primary", "model": "gpt-4o-mini"}
        cfg["providers"] = {
            "primary": {
                "type": "openai",
                "base_url": upstream.url + "/v1",
                "api_key": "env:PH_TEST_UPSTREAM_KEY",
            }
        }
        cfg["guards"] = {"pii": {"input": [{"type": "pii", "action": "pseudonymize",
                                            "entities": ["EMAIL_ADDRESS"]}]}}  # fmt: skip
        cfg["models"] = {
            "chat": {"targets": [target], "cache": {"ttl_s": 600}, "guards": "pii"},
            "embed": {"targets": [{"provider": "primary", "model": "text-embedding-3-small"}]},
        }
        notes = {"embedder": "embed", "acl": {"default": "allow"}}
        cfg["rag"] = {
            "store": {"url": f"sqlite:///{tmp_path}/rag.db"},
            "collections": {"notes": notes},
        }
        path = tmp_path / "pilothouse.yaml"
        path.write_text(yaml.safe_dump(cfg))
        gateway = ThreadedGateway(load_settings(path)).start()
        try:
            yield gateway, upstream
        finally:
            gateway.stop()


def test_erasure_reaches_the_memory_cache_mappings_and_rag_documents(
    gw: tuple[ThreadedGateway, Recorder],
) -> None:
    gateway, upstream = gw
    key = gateway.create_key(name="app")
    client = httpx.Client(base_url=gateway.url, timeout=30,
                          headers={"Authorization": f"Bearer {key}"})  # fmt: skip

    def ask(who: str, text: str) -> httpx.Response:
        body = {"model": "chat", "messages": [{"role": "user", "content": text}]}
        meta = {"x-pilothouse-metadata": json.dumps({"user": who})}
        return client.post("/v1/chat/completions", headers=meta, json=body)

    mine = PHRASE
    assert ask("vera", mine).status_code == 200
    assert ask("vera", mine).headers.get("x-pilothouse-cache") == "hit"  # in the memory cache
    assert ask("vera", "mail me at vera.k@example.org").status_code == 200  # a pseudonym map
    assert ask("omar", OTHER).status_code == 200
    docs = [{"id": "vera-notes", "text": f"Notes: {PHRASE}", "metadata": {"user_id": "vera"}},
            {"id": "office", "text": OTHER}]  # fmt: skip
    assert client.post("/v1/rag/notes/documents", json={"documents": docs}).status_code == 200

    with gateway.admin() as admin:
        viewer = gateway.create_key(name="vic", role="viewer")
        refused = httpx.post(gateway.url + "/admin/privacy/erase", json={"user": "vera"},
                             headers={"Authorization": f"Bearer {viewer}"})  # fmt: skip
        assert refused.status_code == 403
        bad = admin.post("/admin/privacy/erase", json={"user": "vera", "key": "k"})
        assert bad.status_code == 400
        done = admin.post("/admin/privacy/erase", json={"user": "vera"})
        assert done.status_code == 200, done.text
        receipt = done.json()
        again = admin.post("/admin/privacy/erase", json={"user": "nobody-like-this"})
        traces = admin.get("/admin/traces", params={"limit": 50}).text
    assert receipt["clean"] is True, receipt
    assert receipt["stores"]["response_cache_memory"] >= 1
    assert receipt["stores"]["pseudonym_mappings_memory"] >= 1
    assert receipt["stores"]["rag_documents"] == 1
    assert {"response_cache_memory", "pseudonym_mappings_memory", "rag_documents"} <= set(
        receipt["residue"]
    )
    assert again.status_code == 404 and "nothing to erase" in again.text
    assert "lapis" not in traces and "vera" not in traces

    before = len(upstream.bodies)
    assert ask("vera", mine).headers.get("x-pilothouse-cache") != "hit"  # the entry is gone
    assert len(upstream.bodies) == before + 1
    assert ask("omar", OTHER).headers.get("x-pilothouse-cache") == "hit"  # others untouched
    assert client.get("/v1/rag/notes/documents/vera-notes").status_code == 404
    assert client.get("/v1/rag/notes/documents/office").status_code == 200
