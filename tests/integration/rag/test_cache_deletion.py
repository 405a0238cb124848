"""Deleting a RAG document deletes the cached answers that cited it (exact and semantic tiers).

Real gateway with the exact and semantic caches on (MiniLM embeddings), in
memory and in Redis; the chat upstream is the chaos provider.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.rag.conftest import EMBED
from tests.support.gateway import ThreadedGateway, base_config, running_gateway

pytestmark = pytest.mark.integration

DOCS = [
    {"id": "refunds", "text": "Refunds are accepted within 30 days of purchase.", "acl": ["staff"]},
    {"id": "parking", "text": "The car park opens at seven in the morning.", "acl": ["staff"]},
]


@pytest.fixture(params=["memory", "redis"])
def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ThreadedGateway]:
    extra: dict[str, Any] = {}
    if request.param == "redis":
        redis_url = request.getfixturevalue("redis_url")
        extra["redis"] = {"url": redis_url, "prefix": request.getfixturevalue("redis_prefix")}
        extra["cache"] = {"backend": "redis"}
    cache = {"ttl_s": 300, "semantic": {"embedder": "embed-local", "threshold": 0.85}}
    cfg = base_config(
        f"sqlite:///{tmp_path}/pilothouse.db",
        tmp_path,
        providers={"chaos": {"type": "chaos"}, **EMBED["providers"]},
        models={
            "chat": {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}], "cache": cache},
            **EMBED["models"],
        },
        rag={
            "store": {"url": f"sqlite:///{tmp_path}/rag.db"},
            "collections": {"handbook": {"embedder": "embed-local"}},
        },
        **extra,
    )
    with running_gateway(cfg) as gw:
        yield gw


def client(gw: ThreadedGateway, **key: object) -> httpx.Client:
    token = gw.create_key(**key)
    return httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {token}"}, timeout=120)


def ask(http: httpx.Client, text: str, cites: str) -> httpx.Response:
    resp = http.post(
        "/v1/chat/completions",
        json={
            "model": "chat",
            "temperature": 0,
            "messages": [{"role": "user", "content": text}],
            "metadata": {"citations": [{"collection": "handbook", "document": cites}]},
        },
    )
    assert resp.status_code == 200, resp.text
    return resp


def test_deleting_a_document_drops_the_answers_that_cited_it(gateway: ThreadedGateway) -> None:
    with client(gateway, metadata={"groups": ["admin"]}) as admin:
        assert admin.post("/v1/rag/handbook/documents", json={"documents": DOCS}).status_code == 200
    with client(gateway, metadata={"groups": ["staff"]}) as app:
        assert (
            "x-pilothouse-cache"
            not in ask(app, "How long is the refund window?", "refunds").headers
        )
        assert (
            ask(app, "How long is the refund window?", "refunds").headers["x-pilothouse-cache"]
            == "hit"
        )
        near = ask(app, "how long is the refund window for purchases?", "refunds")
        assert near.headers.get("x-pilothouse-cache") == "semantic", near.headers
        ask(app, "When does the car park open?", "parking")
        assert (
            ask(app, "When does the car park open?", "parking").headers["x-pilothouse-cache"]
            == "hit"
        )

        gone = app.delete("/v1/rag/handbook/documents/refunds")
        assert gone.status_code == 200, gone.text
        assert gone.json()["cached_answers_deleted"] == 2  # the exact entry and the semantic one

        # The identical request: the answers citing the deleted document are gone from both
        # tiers (neither the exact entry nor the semantic neighbour answers it).
        again = ask(app, "How long is the refund window?", "refunds")
        assert "x-pilothouse-cache" not in again.headers
        # An answer citing another document is untouched.
        assert (
            ask(app, "When does the car park open?", "parking").headers["x-pilothouse-cache"]
            == "hit"
        )


def test_bundle_answers_cite_what_retrieval_injected(gateway: ThreadedGateway) -> None:
    bundle = {
        "name": "handbook-answer",
        "model": "chat",
        "params": {"temperature": 0},
        "messages": [{"role": "user", "content": "{{ context }}\n\nQ: {{ question }}"}],
        "variables": {"question": {"type": "string", "required": True}},
        "retrieval": {
            "collection": "handbook",
            "k": 1,
            "query": "{{ question }}",
            "mode": "keyword",
        },
    }
    with client(gateway, metadata={"groups": ["admin"]}) as admin:
        assert admin.post("/v1/rag/handbook/documents", json={"documents": DOCS}).status_code == 200
    with gateway.admin() as ops:
        assert ops.post("/admin/prompts", json=bundle).status_code == 201
    body = {"model": "prompt:handbook-answer@1", "prompt_variables": {"question": "refunds"}}
    with client(gateway, metadata={"groups": ["staff"]}) as app:
        first = app.post("/v1/chat/completions", json=body)
        assert first.status_code == 200 and first.headers["x-pilothouse-retrieval"] == "refunds"
        cached = app.post("/v1/chat/completions", json=body)
        assert cached.headers["x-pilothouse-cache"] == "hit"
        gone = app.delete("/v1/rag/handbook/documents/refunds")
        assert gone.json()["cached_answers_deleted"] == 2  # cited by the bundle's retrieval
        after = app.post("/v1/chat/completions", json=body)
        assert "x-pilothouse-cache" not in after.headers
        assert "refunds" not in after.headers.get("x-pilothouse-retrieval", "")


def test_privacy_erasure_of_a_document_drops_the_answers_that_cited_it(
    gateway: ThreadedGateway,
) -> None:
    owned = {"id": "vera-notes", "text": "Notes on the parking permit.", "acl": ["staff"]}
    owned["metadata"] = {"user": "vera"}  # type: ignore[assignment]
    with client(gateway, metadata={"groups": ["admin"]}) as admin:
        resp = admin.post("/v1/rag/handbook/documents", json={"documents": [owned]})
        assert resp.status_code == 200, resp.text
    with client(gateway, metadata={"groups": ["staff"]}) as app:
        ask(app, "Is there a parking permit?", "vera-notes")
        assert ask(app, "Is there a parking permit?", "vera-notes").headers["x-pilothouse-cache"]
        with gateway.admin() as ops:
            done = ops.post("/admin/privacy/erase", json={"user": "vera"})
        assert done.status_code == 200, done.text
        assert done.json()["stores"]["rag_documents"] == 1
        assert (
            "x-pilothouse-cache" not in ask(app, "Is there a parking permit?", "vera-notes").headers
        )
