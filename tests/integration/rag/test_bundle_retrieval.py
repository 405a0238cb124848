"""Prompt bundles with ``retrieval:``: the gateway searches as the caller and injects context.

Real gateway, SQLite RAG store, the bundled MiniLM embedder; the chat upstream
is the chaos provider, which echoes the last user message, so a reply shows
exactly what the upstream was sent.
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
    {"id": "pto", "text": "Staff get 25 days of paid leave a year.", "acl": ["staff"]},
    {"id": "exec-leave", "text": "Executives get unlimited paid leave.", "acl": ["exec"]},
    {"id": "parking", "text": "The car park opens at seven.", "acl": ["staff"]},
]
BUNDLE: dict[str, Any] = {
    "name": "handbook-answer",
    "model": "chat",
    "messages": [
        {"role": "system", "content": "Answer from the handbook."},
        {"role": "user", "content": "Passages:\n{{ context }}\n\nQuestion: {{ question }}"},
    ],
    "variables": {"question": {"type": "string", "required": True}},
    "retrieval": {"collection": "handbook", "k": 2, "query": "{{ question }}", "mode": "keyword"},
}


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[ThreadedGateway]:
    rag = {
        "store": {"url": f"sqlite:///{tmp_path}/rag.db"},
        "collections": {"handbook": {"embedder": "embed-local", "acl": {"default": "deny"}}},
    }
    models = {**base_config("", tmp_path)["models"], **EMBED["models"]}
    cfg = base_config(
        f"sqlite:///{tmp_path}/pilothouse.db",
        tmp_path,
        providers={"chaos": {"type": "chaos"}, **EMBED["providers"]},
        models=models,
        rag=rag,
    )
    with running_gateway(cfg) as gw:
        with client(gw, metadata={"groups": ["admin"]}) as admin:
            resp = admin.post("/v1/rag/handbook/documents", json={"documents": DOCS})
            assert resp.status_code == 200, resp.text
        gw.ingest_id = resp.headers["x-request-id"]  # type: ignore[attr-defined]
        yield gw


def client(gw: ThreadedGateway, **key: object) -> httpx.Client:
    token = gw.create_key(**key)
    return httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {token}"}, timeout=120)


def ask(http: httpx.Client, prompt: str, question: str) -> httpx.Response:
    return http.post(
        "/v1/chat/completions",
        json={"model": f"prompt:{prompt}@1", "prompt_variables": {"question": question}},
    )


def trace_of(gw: ThreadedGateway, request_id: str) -> dict[str, Any]:
    with gw.admin() as admin:
        resp = admin.get("/admin/traces/" + request_id)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_context_is_retrieved_as_the_caller_and_injected(gateway: ThreadedGateway) -> None:
    with gateway.admin() as admin:
        assert admin.post("/admin/prompts", json=BUNDLE).status_code == 201
    with client(gateway, metadata={"groups": ["staff"]}) as staff:
        resp = ask(staff, "handbook-answer", "how much paid leave")
        assert resp.status_code == 200, resp.text
    reply = resp.json()["choices"][0]["message"]["content"]
    # The upstream saw the staff passage, tagged with its id, and never the exec-only one.
    assert "[pto]" in reply and "25 days of paid leave" in reply
    assert "unlimited" not in reply and "exec-leave" not in reply
    assert reply.endswith("Question: how much paid leave")
    assert resp.headers["x-pilothouse-retrieval"] == "pto"
    with client(gateway, metadata={"groups": ["staff", "exec"]}) as boss:
        both = ask(boss, "handbook-answer", "how much paid leave")
    assert both.status_code == 200, both.text
    assert "unlimited paid leave" in both.json()["choices"][0]["message"]["content"]
    assert set(both.headers["x-pilothouse-retrieval"].split(",")) == {"pto", "exec-leave"}

    trace = trace_of(gateway, resp.headers["x-request-id"])
    [span] = [s for s in trace["spans"] if s["name"] == "rag.retrieval"]
    attrs = span["attributes"]
    assert attrs["pilothouse.retrieval.source"] == "bundle"
    assert attrs["pilothouse.retrieval.document_ids"] == ["pto"]
    assert attrs["pilothouse.retrieval.k"] == 2 and attrs["pilothouse.retrieval.returned"] == 1
    assert attrs["pilothouse.retrieval.underfilled"] is True  # asked 2, one readable matched
    assert attrs["pilothouse.retrieval.query"] == "how much paid leave"
    from pilothouse.console.reconstruct import reconstruct

    rebuilt = reconstruct(trace.get("content"), trace["spans"])
    assert [d.doc_id for d in rebuilt.documents] == ["pto"]


def test_without_a_context_variable_the_passages_are_a_system_message(
    gateway: ThreadedGateway,
) -> None:
    bundle = {
        **BUNDLE,
        "name": "handbook-plain",
        "retrieval": {"collection": "handbook", "k": 2, "query": "{{ question }}"},  # hybrid
        "messages": [
            {"role": "system", "content": "Answer from the handbook."},
            {"role": "user", "content": "{{ question }}"},
        ],
    }
    with gateway.admin() as admin:
        assert admin.post("/admin/prompts", json=bundle).status_code == 201
    with client(gateway, metadata={"groups": ["staff"]}) as staff:
        resp = ask(staff, "handbook-plain", "when does the car park open")
    assert resp.status_code == 200, resp.text
    ingest_id = gateway.ingest_id  # type: ignore[attr-defined]
    assert resp.json()["choices"][0]["message"]["content"] == "when does the car park open"
    # Hybrid (the collection's mode): the query was embedded through the gateway too.
    assert resp.headers["x-pilothouse-retrieval"].split(",") == ["parking", "pto"]
    sent = trace_of(gateway, resp.headers["x-request-id"])["request"]["messages"]
    assert [m["role"] for m in sent] == ["system", "system", "user"]
    assert sent[0]["content"] == "Answer from the handbook."
    assert "[parking]\nThe car park opens at seven." in sent[1]["content"]
    with gateway.admin() as admin:  # the query's embedding: its own costed, traced request
        embeds = admin.get("/admin/traces", params={"model": "embed-local"}).json()["data"]
    [query_embed] = [t for t in embeds if t["request_id"] != ingest_id]
    assert query_embed["status"] == 200 and query_embed["input_tokens"] > 0
    with gateway.admin() as admin:
        linked = admin.get("/admin/traces/" + query_embed["request_id"]).json()
    assert linked["usage"]["metadata"] == {"rag_for": resp.headers["x-request-id"]}


def test_bad_retrieval_blocks_are_refused_and_unknown_collections_are_a_404(
    gateway: ThreadedGateway,
) -> None:
    with gateway.admin() as admin:
        assert admin.post("/admin/prompts", json=BUNDLE).status_code == 201
        for retrieval, param in [
            ({**BUNDLE["retrieval"], "k": 0}, "retrieval.k"),
            ({**BUNDLE["retrieval"], "k": "5"}, "retrieval.k"),
            ({"collection": "handbook"}, "retrieval.query"),
            ({**BUNDLE["retrieval"], "query": "{{ nobody }}"}, "retrieval.query"),
            ({**BUNDLE["retrieval"], "top": 3}, "retrieval.top"),
            ({**BUNDLE["retrieval"], "mode": "fuzzy"}, "retrieval.mode"),
        ]:
            bad = admin.post("/admin/prompts", json={**BUNDLE, "retrieval": retrieval})
            assert bad.status_code == 400, (retrieval, bad.text)
            assert bad.json()["error"]["param"] == param, bad.text
        declared = {**BUNDLE, "variables": {**BUNDLE["variables"], "context": {}}}
        refused = admin.post("/admin/prompts", json=declared)
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == "variables.context"
        elsewhere = {
            **BUNDLE,
            "name": "wiki-answer",
            "retrieval": {**BUNDLE["retrieval"], "collection": "wiki"},
        }
        assert admin.post("/admin/prompts", json=elsewhere).status_code == 201
        # A bundle without retrieval keeps `context` an ordinary variable.
        plain = {
            "name": "plain",
            "model": "chat",
            "messages": [{"role": "user", "content": "{{ context }}"}],
            "variables": {"context": {"type": "string"}},
        }
        assert admin.post("/admin/prompts", json=plain).status_code == 201
    with client(gateway, metadata={"groups": ["staff"]}) as staff:
        missing = ask(staff, "wiki-answer", "paid leave")
        assert missing.status_code == 404, missing.text
        error = missing.json()["error"]
        assert "'wiki'" in error["message"] and error["param"] == "retrieval.collection"
        empty = staff.post(
            "/v1/chat/completions",
            json={"model": "prompt:handbook-answer@1", "prompt_variables": {"question": "  "}},
        )
        assert empty.status_code == 400 and empty.json()["error"]["param"] == "retrieval.query"
