"""``/v1/rag/{collection}/...`` on a real gateway: the issue's config, keys' groups as ACLs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.rag.conftest import EMBED
from tests.support.gateway import ThreadedGateway, base_config, running_gateway

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(rag_store_url: str, tmp_path: Path) -> Iterator[ThreadedGateway]:
    rag = {
        "store": {"url": rag_store_url},
        "collections": {
            "handbook": {
                "embedder": "embed-local",
                "chunking": {"strategy": "recursive", "max_tokens": 300, "overlap": 40},
                "search": {"mode": "hybrid", "k": 8, "rerank": False},
                "acl": {"default": "deny"},
                "freshness": {"max_age": "7d"},
            }
        },
    }
    cfg = base_config(f"sqlite:///{tmp_path}/pilothouse.db", tmp_path, **EMBED, rag=rag)
    with running_gateway(cfg) as gw:
        yield gw


def client(gw: ThreadedGateway, **key: object) -> httpx.Client:
    token = gw.create_key(**key)
    return httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {token}"}, timeout=120)


def test_documents_search_get_and_delete_over_http(gateway: ThreadedGateway) -> None:
    docs = [
        {"id": "pto", "text": "Staff get 25 days of paid leave a year.", "acl": ["staff"]},
        {"id": "salaries", "text": "The salary bands for 2026 are confidential.", "acl": ["hr"]},
        {"id": "board", "text": "Board minutes: paid leave policy unchanged.", "title": "Board"},
    ]
    with client(gateway, metadata={"groups": ["admin"]}) as admin:
        resp = admin.post("/v1/rag/handbook/documents", json={"documents": docs})
        assert resp.status_code == 200, resp.text
        assert {d["id"]: d["status"] for d in resp.json()["data"]} == {
            "pto": "created",
            "salaries": "created",
            "board": "created",
        }
        again = admin.post("/v1/rag/handbook/documents", json={"documents": docs[:1]}).json()
        assert again["data"] == [{"id": "pto", "status": "unchanged"}]
    with client(gateway, metadata={"groups": ["staff"]}) as staff:
        resp = staff.post("/v1/rag/handbook/search", json={"query": "paid leave days", "k": 10})
        assert resp.status_code == 200, resp.text
        data = resp.json()["data"]
        assert [d["document_id"] for d in data] == ["pto"]  # not hr, not the group-less page
        assert set(data[0]) >= {
            "document_id",
            "chunk_id",
            "score",
            "text",
            "title",
            "source",
            "metadata",
        }
        for mode in ("dense", "keyword"):
            got = staff.post(
                "/v1/rag/handbook/search", json={"query": "salary bands", "k": 5, "mode": mode}
            ).json()["data"]
            assert "salaries" not in {d["document_id"] for d in got}
        assert staff.get("/v1/rag/handbook/documents/pto").json()["chunks"] == 1
        assert staff.get("/v1/rag/handbook/documents/salaries").status_code == 404
        assert staff.delete("/v1/rag/handbook/documents/pto").status_code == 200
        assert staff.get("/v1/rag/handbook/documents/pto").status_code == 404
        gone = staff.post("/v1/rag/handbook/search", json={"query": "paid leave", "k": 10}).json()
        assert gone["data"] == [] and gone["underfilled"] is True


def test_search_filter_narrows_by_metadata(gateway: ThreadedGateway) -> None:
    docs = [
        {
            "id": f"{team}-{i}",
            "text": f"On-call rota {i} for the {team} team.",
            "acl": ["staff"],
            "metadata": {"team": team},
        }
        for team in ("eng", "sales")
        for i in range(3)
    ]
    with client(gateway, metadata={"groups": ["admin"]}) as admin:
        assert admin.post("/v1/rag/handbook/documents", json={"documents": docs}).status_code == 200
    with client(gateway, metadata={"groups": ["staff"]}) as staff:
        for mode in ("dense", "keyword", "hybrid"):
            resp = staff.post(
                "/v1/rag/handbook/search",
                json={"query": "on-call rota", "k": 10, "mode": mode, "filter": {"team": "sales"}},
            )
            assert resp.status_code == 200, resp.text
            data = resp.json()["data"]
            assert sorted(d["document_id"] for d in data) == ["sales-0", "sales-1", "sales-2"]
            assert all(d["metadata"] == {"team": "sales"} for d in data)
        either = staff.post(
            "/v1/rag/handbook/search",
            json={"query": "rota", "k": 10, "filter": {"team": ["sales", "eng"]}},
        ).json()["data"]
        assert len(either) == 6
        for bad in ("sales", {"team": {"$ne": "x"}}, {"team": []}):
            resp = staff.post("/v1/rag/handbook/search", json={"query": "rota", "filter": bad})
            assert resp.status_code == 400, (bad, resp.text)
            assert resp.json()["error"]["param"].startswith("filter"), bad


def test_bad_requests_are_precise_4xx(gateway: ThreadedGateway) -> None:
    with client(gateway, metadata={"groups": ["staff"]}) as http:
        assert http.post("/v1/rag/nope/search", json={"query": "x"}).status_code == 404
        bad = http.post("/v1/rag/handbook/search", json={"query": "x", "mode": "fuzzy"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "mode"
        assert http.post("/v1/rag/handbook/search", json={"query": ""}).status_code == 400
        assert http.post("/v1/rag/handbook/search", json={"query": "x", "k": 0}).status_code == 400
        missing = http.post("/v1/rag/handbook/documents", json={"documents": [{"text": "t"}]})
        assert missing.status_code == 400 and "id" in missing.json()["error"]["message"]
    anonymous = httpx.post(gateway.url + "/v1/rag/handbook/search", json={"query": "x"})
    assert anonymous.status_code == 401


def test_a_search_records_a_retrieval_span_on_the_callers_trace(gateway: ThreadedGateway) -> None:
    from pilothouse.console.reconstruct import reconstruct

    docs = [
        {"id": "pto", "text": "Staff get 25 days of paid leave a year.", "acl": ["staff"]},
        {"id": "secret", "text": "Paid leave for executives is unlimited.", "acl": ["exec"]},
    ]
    with client(gateway, metadata={"groups": ["admin"]}) as admin:
        assert admin.post("/v1/rag/handbook/documents", json={"documents": docs}).status_code == 200
    with client(gateway, metadata={"groups": ["staff"]}) as staff:
        resp = staff.post(
            "/v1/rag/handbook/search", json={"query": "paid leave", "k": 3, "mode": "keyword"}
        )
        assert resp.status_code == 200, resp.text
    with gateway.admin() as admin:
        trace = admin.get("/admin/traces/" + resp.headers["x-request-id"]).json()
    [span] = [s for s in trace["spans"] if s["name"] == "rag.retrieval"]
    attrs = span["attributes"]
    assert attrs["pilothouse.retrieval.document_ids"] == ["pto"]  # not the exec-only page
    assert attrs["pilothouse.retrieval.scores"][0] == resp.json()["data"][0]["score"]
    assert attrs["pilothouse.retrieval.underfilled"] is True  # k=3, one readable page
    assert attrs["pilothouse.retrieval.k"] == 3 and attrs["pilothouse.retrieval.mode"] == "keyword"
    assert attrs["pilothouse.retrieval.latency_ms"] >= 0
    assert attrs["pilothouse.retrieval.query"] == "paid leave"
    scraper = gateway.create_key(scopes=["metrics"])
    text = httpx.get(gateway.url + "/metrics", headers={"Authorization": f"Bearer {scraper}"}).text
    assert 'pilothouse_rag_underfilled_total{collection="handbook",mode="keyword"} 1.0' in text
    assert 'pilothouse_rag_searches_total{collection="handbook",mode="keyword"} 1.0' in text
    rebuilt = reconstruct(trace.get("content"), trace["spans"])
    assert [d.doc_id for d in rebuilt.documents] == ["pto"]
    assert rebuilt.documents[0].span == "rag.retrieval"
