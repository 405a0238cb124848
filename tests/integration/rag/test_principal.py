"""The signed principal header on a real gateway: one key, many end users, groups narrowed.

SQLite RAG store, the bundled MiniLM embedder, the chaos chat upstream (it
echoes the last user message, so a bundle reply shows what was retrieved).
Tokens are real HS256 JWTs signed with PyJWT.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.integration.rag.conftest import EMBED
from tests.support.gateway import ThreadedGateway, base_config, running_gateway

pytestmark = pytest.mark.integration

SECRET = "principal-test-secret-0123456789abcdef"  # >= 32 bytes: HS256 key length
HEADER = "x-pilothouse-principal"
STAFF_PAGES = [
    {"id": f"staff-{i}", "text": f"Staff handbook page {i}: paid leave rule {i}.", "acl": ["staff"]}
    for i in range(6)
]
EXEC_PAGES = [
    {
        "id": f"exec-{i}",
        "text": f"Executive page {i}: unlimited paid leave rule {i}.",
        "acl": ["exec"],
    }
    for i in range(14)
]
BUNDLE: dict[str, Any] = {
    "name": "handbook-answer",
    "model": "chat",
    "messages": [{"role": "user", "content": "Passages:\n{{ context }}\n\nQ: {{ question }}"}],
    "variables": {"question": {"type": "string", "required": True}},
    "retrieval": {"collection": "handbook", "k": 4, "query": "{{ question }}", "mode": "keyword"},
}


def token(sub: str = "alice", groups: Any = ("staff",), exp_in: float = 60, **extra: Any) -> str:
    claims = {"sub": sub, "exp": int(time.time() + exp_in), "groups": list(groups), **extra}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _config(tmp: Path, principal: dict[str, Any] | None) -> dict[str, Any]:
    rag: dict[str, Any] = {
        "store": {"url": f"sqlite:///{tmp}/rag.db"},
        "collections": {"handbook": {"embedder": "embed-local", "acl": {"default": "deny"}}},
    }
    if principal is not None:
        rag["principal"] = principal
    return base_config(f"sqlite:///{tmp}/pilothouse.db", tmp, **EMBED, rag=rag)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedGateway]:
    tmp = tmp_path_factory.mktemp("rag-principal")
    os.environ["PH_TEST_PRINCIPAL_SECRET"] = SECRET
    try:
        cfg = _config(tmp, {"secret": "env:PH_TEST_PRINCIPAL_SECRET", "max_age_s": 300})
        with running_gateway(cfg) as gw:
            with client(gw, metadata={"groups": ["admin"]}) as admin:
                docs = STAFF_PAGES + EXEC_PAGES
                resp = admin.post("/v1/rag/handbook/documents", json={"documents": docs})
                assert resp.status_code == 200, resp.text
            with gw.admin() as admin:
                assert admin.post("/admin/prompts", json=BUNDLE).status_code == 201
            yield gw
    finally:
        os.environ.pop("PH_TEST_PRINCIPAL_SECRET", None)


def client(gw: ThreadedGateway, **key: object) -> httpx.Client:
    secret = gw.create_key(**key)
    return httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {secret}"}, timeout=120)


def search(
    http: httpx.Client, tok: str | None, k: int = 20, mode: str = "hybrid"
) -> httpx.Response:
    headers = {HEADER: tok} if tok is not None else {}
    body = {"query": "paid leave rule", "k": k, "mode": mode}
    return http.post("/v1/rag/handbook/search", json=body, headers=headers)


def doc_ids(resp: httpx.Response) -> set[str]:
    assert resp.status_code == 200, resp.text
    return {d["document_id"] for d in resp.json()["data"]}


def spans_of(gw: ThreadedGateway, request_id: str) -> list[dict[str, Any]]:
    with gw.admin() as admin:
        resp = admin.get("/admin/traces/" + request_id)
    assert resp.status_code == 200, resp.text
    return [s for s in resp.json()["spans"] if s["name"] == "rag.retrieval"]


def test_a_staff_token_cannot_see_exec_documents_through_a_key_that_can(
    gateway: ThreadedGateway,
) -> None:
    with client(gateway, metadata={"groups": ["staff", "exec"]}) as app:
        assert "exec-0" in doc_ids(search(app, None))  # the key alone reads exec
        tok = token("alice", ["staff"])
        resp = search(app, tok)
        assert doc_ids(resp) == {p["id"] for p in STAFF_PAGES}
        assert (
            app.get("/v1/rag/handbook/documents/exec-0", headers={HEADER: tok}).status_code == 404
        )
        assert (
            app.get("/v1/rag/handbook/documents/staff-0", headers={HEADER: tok}).status_code == 200
        )
        assert app.get("/v1/rag/handbook/documents/exec-0").status_code == 200
    # The span names the end user (its id only), never the token or the groups.
    [span] = spans_of(gateway, resp.headers["x-request-id"])
    assert span["attributes"]["pilothouse.retrieval.principal"] == "alice"
    assert tok not in str(span) and not any("group" in name for name in span["attributes"])


def test_a_token_cannot_widen_beyond_the_keys_groups(gateway: ThreadedGateway) -> None:
    with client(gateway, metadata={"groups": ["staff"]}) as app:
        wide = token("mallory", ["staff", "exec", "admin"])
        assert doc_ids(search(app, wide)) == {p["id"] for p in STAFF_PAGES}
        assert (
            app.get("/v1/rag/handbook/documents/exec-3", headers={HEADER: wide}).status_code == 404
        )
        # A token with no group the key has reads nothing under acl default: deny.
        assert doc_ids(search(app, token("eve", ["exec"]))) == set()


def test_an_admin_key_reads_what_the_end_user_reads(gateway: ThreadedGateway) -> None:
    with client(gateway, metadata={"groups": ["admin"]}) as admin:
        assert len(doc_ids(search(admin, None))) == 20
        assert doc_ids(search(admin, token("bob", ["exec"]))) == {p["id"] for p in EXEC_PAGES}
        # An `admin` group in a token is a group name, not read-everything.
        assert doc_ids(search(admin, token("bob", ["admin"]))) == set()


def test_a_key_without_groups_delegates_only_with_delegate_groups(
    gateway: ThreadedGateway,
) -> None:
    tok = token("carol", ["exec"])
    with client(gateway) as plain:
        refused = search(plain, tok)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "principal_not_delegated"
        assert doc_ids(search(plain, None)) == set()  # unchanged without the header
    with client(gateway, metadata={"delegate_groups": True}) as delegate:
        assert doc_ids(search(delegate, tok)) == {p["id"] for p in EXEC_PAGES}


def test_a_narrow_group_still_gets_k_results_in_every_mode(gateway: ThreadedGateway) -> None:
    # 6 staff pages among 20: the staff user still gets k=5, none of them exec.
    with client(gateway, metadata={"groups": ["staff", "exec"]}) as app:
        for mode in ("dense", "keyword", "hybrid"):
            resp = search(app, token("alice", ["staff"]), k=5, mode=mode)
            got = doc_ids(resp)
            assert len(got) == 5 and all(d.startswith("staff-") for d in got), (mode, got)
            assert resp.json()["underfilled"] is False


def test_forged_expired_and_malformed_tokens_are_401_without_echo(
    gateway: ThreadedGateway,
) -> None:
    now = int(time.time())
    bad = {
        "forged": jwt.encode(
            {"sub": "alice", "exp": now + 60, "groups": ["exec"]}, "x" * 40, algorithm="HS256"
        ),
        "expired": token(exp_in=-120),
        "too long-lived": token(exp_in=3600),
        "no exp": jwt.encode({"sub": "alice", "groups": ["staff"]}, SECRET, algorithm="HS256"),
        "no sub": jwt.encode({"exp": now + 60, "groups": ["staff"]}, SECRET, algorithm="HS256"),
        "groups not a list": jwt.encode(
            {"sub": "alice", "exp": now + 60, "groups": "staff"}, SECRET, algorithm="HS256"
        ),
        "alg none": jwt.encode({"sub": "alice", "exp": now + 60}, None, algorithm="none"),
        "garbage": "not-a-jwt-secret-looking-value",
    }
    with client(gateway, metadata={"groups": ["staff", "exec"]}) as app:
        for name, tok in bad.items():
            for resp in (
                search(app, tok),
                app.get("/v1/rag/handbook/documents/staff-0", headers={HEADER: tok}),
            ):
                assert resp.status_code == 401, (name, resp.text)
                error = resp.json()["error"]
                assert error["code"] == "invalid_principal", (name, error)
                assert tok not in resp.text and tok.split(".")[0] not in error["message"], name
                assert HEADER in error["message"]


def test_bundle_retrieval_honours_the_token(gateway: ThreadedGateway) -> None:
    body = {
        "model": "prompt:handbook-answer@1",
        "prompt_variables": {"question": "unlimited paid leave rule"},
    }
    with client(gateway, metadata={"groups": ["staff", "exec"]}) as app:
        both = app.post("/v1/chat/completions", json=body)
        assert both.status_code == 200, both.text
        assert "Executive page" in both.json()["choices"][0]["message"]["content"]
        resp = app.post("/v1/chat/completions", json=body, headers={HEADER: token("dana")})
        assert resp.status_code == 200, resp.text
        expired = app.post(
            "/v1/chat/completions", json=body, headers={HEADER: token("dana", exp_in=-60)}
        )
        assert expired.status_code == 401 and expired.json()["error"]["code"] == "invalid_principal"
    reply = resp.json()["choices"][0]["message"]["content"]
    assert "Staff handbook page" in reply and "Executive" not in reply
    retrieved = resp.headers["x-pilothouse-retrieval"].split(",")
    assert len(retrieved) == 4 and all(d.startswith("staff-") for d in retrieved)
    [span] = spans_of(gateway, resp.headers["x-request-id"])
    assert span["attributes"]["pilothouse.retrieval.principal"] == "dana"
    assert span["attributes"]["pilothouse.retrieval.source"] == "bundle"


def test_the_header_is_refused_when_the_feature_is_off(tmp_path: Path) -> None:
    with running_gateway(_config(tmp_path, None)) as gw, client(gw) as app:
        for resp in (
            search(app, token()),
            app.post(
                "/v1/chat/completions",
                json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
                headers={HEADER: token()},
            ),
        ):
            assert resp.status_code == 400, resp.text
            assert resp.json()["error"]["code"] == "principal_header_disabled"
        assert search(app, None).status_code == 200  # the same call without the header works
