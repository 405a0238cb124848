"""Malformed and hostile input at the edge: every case is a precise 400, never a 500.

Reproduces issue 8 items 1 (edge side) and 8 through a real gateway on SQLite and
PostgreSQL, and checks that the request is still recorded once in the usage ledger.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.adversarial.conftest import nested, with_raw
from tests.support.gateway import ADMIN_KEY, ThreadedGateway, base_config, running_gateway
from tests.support.ledger import usage_rows

pytestmark = pytest.mark.integration

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
JSON_CT = {"content-type": "application/json"}


def otlp(start: Any, end: Any) -> dict[str, Any]:
    span = {
        "traceId": "ab" * 16,
        "spanId": "cd" * 8,
        "name": "s",
        "startTimeUnixNano": start,
        "endTimeUnixNano": end,
    }
    return {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}


# (id, method, path, who, body bytes or json, extra headers, expected param)
CASES: list[tuple[str, str, str, str, Any, dict[str, str], str | None]] = [
    ("role-list", "POST", "/v1/chat/completions", "key",
     {"model": "chat", "messages": [{"role": ["user"], "content": "hi"}]}, {}, "messages[0].role"),
    ("role-object", "POST", "/v1/chat/completions", "key",
     {"model": "chat", "messages": [{"role": {"a": 1}, "content": "hi"}]}, {}, "messages[0].role"),
    ("metadata-header-254", "POST", "/v1/chat/completions", "key", CHAT,
     {"x-pilothouse-metadata": '{"user":' + nested(254) + "}"}, "x-pilothouse-metadata"),
    ("metadata-header-900", "POST", "/v1/chat/completions", "key", CHAT,
     {"x-pilothouse-metadata": '{"user":' + nested(900) + "}"}, "x-pilothouse-metadata"),
    ("metadata-header-size", "POST", "/v1/chat/completions", "key", CHAT,
     {"x-pilothouse-metadata": json.dumps({"user": "u" * 9000})}, "x-pilothouse-metadata"),
    ("metadata-header-nul", "POST", "/v1/chat/completions", "key", CHAT,
     {"x-pilothouse-metadata": '{"user": "a\\u0000b"}'}, "x-pilothouse-metadata"),
    ("body-metadata-300", "POST", "/v1/chat/completions", "key",
     with_raw(CHAT, metadata='{"a":' + nested(300) + "}"), {}, "metadata"),
    ("tools-900", "POST", "/v1/chat/completions", "key", with_raw(CHAT, tools=nested(900)), {},
     "tools"),
    ("embeddings-600", "POST", "/v1/embeddings", "key",
     with_raw({"model": "chat"}, input=nested(600)), {}, "input"),
    ("messages-api-300", "POST", "/v1/messages", "key",
     with_raw({"model": "chat", "max_tokens": 5}, messages=nested(300)), {}, "messages"),
    ("feedback-500", "POST", "/v1/feedback", "key",
     with_raw({"task_id": "t", "success": True}, metadata='{"a":' + nested(500) + "}"), {},
     "metadata"),
    ("feedback-metadata-size", "POST", "/v1/feedback", "key",
     {"task_id": "t", "success": True, "metadata": {"a": "b" * 9000}}, {}, "metadata"),
    ("scopes-nested", "POST", "/admin/keys", "admin", {"name": "x", "scopes": [["admin"]]}, {},
     "scopes"),
    ("budget-nan", "POST", "/admin/keys", "admin", {"name": "x", "budget_usd": "NaN"}, {},
     "budget_usd"),
    ("budget-1e20", "POST", "/admin/keys", "admin", {"name": "x", "budget_usd": "1e20"}, {},
     "budget_usd"),
    ("budget-1e300", "POST", "/admin/keys", "admin", {"name": "x", "budget_usd": 1e300}, {},
     "budget_usd"),
    ("key-metadata-300", "POST", "/admin/keys", "admin",
     with_raw({"name": "x"}, metadata='{"a":' + nested(300) + "}"), {}, "metadata"),
    ("key-name-nul", "POST", "/admin/keys", "admin", {"name": "a\x00b"}, {}, "name"),
    ("otlp-true", "POST", "/v1/traces", "key", b"true", JSON_CT, None),
    ("otlp-1", "POST", "/v1/traces", "key", b"1", JSON_CT, None),
    ("otlp-null", "POST", "/v1/traces", "key", b"null", JSON_CT, None),
    ("otlp-1000-arrays", "POST", "/v1/traces", "key", nested(1000).encode(), JSON_CT,
     "OTLP/JSON body"),
    ("otlp-1000-in-object", "POST", "/v1/traces", "key",
     with_raw({}, resourceSpans=nested(1000)), JSON_CT, "resourceSpans"),
    ("otlp-time-2^64-1", "POST", "/v1/traces", "key", otlp(str(2**64 - 1), str(2**64 - 1)),
     JSON_CT, "startTimeUnixNano"),
    ("otlp-end-2^64-1", "POST", "/v1/traces", "key", otlp("1", 2**64 - 1), JSON_CT,
     "endTimeUnixNano"),
    ("status-huge", "GET", "/admin/traces?status=99999999999999999999", "admin", None, {},
     "status"),
    ("limit-unicode-digit", "GET", "/admin/traces?limit=%C2%B2", "admin", None, {}, "limit"),
    ("audit-cursor-huge", "GET", "/admin/audit?cursor=99999999999999999999", "admin", None, {},
     "cursor"),
]  # fmt: skip
for _path in ("/admin/traces", "/admin/usage", "/admin/reports/costs"):
    for _span in ("99999999d", "9999999999999h"):
        CASES.append((f"since-{_span}-{_path}", "GET", f"{_path}?since={_span}", "admin", None, {},
                      "since"))  # fmt: skip
    CASES.append((f"until-tz-overflow-{_path}", "GET", f"{_path}?until=9999-12-31T23:59:59-23:00",
                  "admin", None, {}, "until"))  # fmt: skip


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ThreadedGateway, str]]:
    tmp: Path = tmp_path_factory.mktemp("edge")
    if request.param == "sqlite":
        with running_gateway(base_config(f"sqlite:///{tmp}/ph.db", tmp)) as gw:
            yield gw, gw.create_key()
        return
    from tests.support.services import postgres_available, temporary_postgres_database

    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable")
    with temporary_postgres_database() as url, running_gateway(base_config(url, tmp)) as gw:
        yield gw, gw.create_key()


def send(gw: ThreadedGateway, key: str, case: tuple[Any, ...]) -> httpx.Response:
    _id, method, path, who, body, headers, _param = case
    token = ADMIN_KEY if who == "admin" else key
    kwargs: dict[str, Any] = {}
    if isinstance(body, bytes):
        kwargs["content"] = body
    elif body is not None:
        kwargs["json"] = body
    return httpx.request(
        method,
        gw.url + path,
        headers={"Authorization": f"Bearer {token}", **headers},
        timeout=30,
        **kwargs,
    )


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_a_precise_400(
    gateway: tuple[ThreadedGateway, str], case: tuple[Any, ...]
) -> None:
    gw, key = gateway
    resp = send(gw, key, case)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"] and "Traceback" not in resp.text
    if case[-1] is not None:  # Anthropic-shaped errors (/v1/messages) have no `param`
        assert error.get("param", case[-1]) == case[-1], error
        assert f"`{case[-1]}`" in error["message"], error


def test_refused_model_requests_are_each_recorded_once(
    gateway: tuple[ThreadedGateway, str],
) -> None:
    """A refused request still leaves exactly one usage row, and the writer keeps working."""
    gw, key = gateway
    model_cases = [c for c in CASES if c[2] in ("/v1/chat/completions", "/v1/embeddings")]
    ids = [send(gw, key, c).headers["x-request-id"] for c in model_cases]
    ok = httpx.post(
        gw.url + "/v1/chat/completions",
        json=CHAT,
        headers={"Authorization": f"Bearer {key}", "x-pilothouse-metadata": '{"user":"u1"}'},
        timeout=30,
    )
    assert ok.status_code == 200, ok.text
    rows = usage_rows(gw)
    by_request = {r["request_id"]: r for r in rows}
    for request_id in ids:
        assert [r["request_id"] for r in rows].count(request_id) == 1
        assert by_request[request_id]["status"] == 400
    assert by_request[ok.headers["x-request-id"]]["metadata"] == {"user": "u1"}


def test_depth_within_the_limit_is_served(gateway: tuple[ThreadedGateway, str]) -> None:
    """The limit refuses abuse, not real JSON: a 40-level tool schema passes."""
    gw, key = gateway
    body = with_raw(CHAT, tools='[{"type":"function","function":{"name":"f","parameters":'
                    + nested(40, "{}") + "}}]")  # fmt: skip
    resp = httpx.post(
        gw.url + "/v1/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {key}", **JSON_CT},
        timeout=30,
    )
    assert resp.status_code != 400 or resp.json()["error"]["code"] != "json_too_deep", resp.text
    assert resp.status_code < 500, resp.text


def test_configured_depth_limit_applies(tmp_path: Path) -> None:
    config = base_config(f"sqlite:///{tmp_path}/ph.db", tmp_path, server={"max_json_depth": 4})
    with running_gateway(config) as gw:
        key = gw.create_key()
        resp = httpx.post(
            gw.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}", "x-pilothouse-metadata": '{"a":[[[[1]]]]}'},
            json=CHAT,
            timeout=30,
        )
        assert resp.status_code == 400
        assert "limit of 4 levels" in resp.json()["error"]["message"]
        resp = httpx.post(
            gw.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}", "x-pilothouse-metadata": '{"a":[[[1]]]}'},
            json=CHAT,
            timeout=30,
        )
        assert resp.status_code == 200, resp.text


def test_store_outage_gives_503_for_an_uncached_key(tmp_path: Path) -> None:
    """Issue 8 item 10: the database refuses connections for real (no mock)."""
    from tests.support.services import postgres_available, psql, temporary_postgres_database

    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable")
    with temporary_postgres_database() as url, running_gateway(base_config(url, tmp_path)) as gw:
        name = url.rsplit("/", 1)[1]
        cached, uncached = gw.create_key(), gw.create_key()

        def chat(key: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {key}"}
            return httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers=headers)

        assert chat(cached).status_code == 200
        psql(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
        psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        try:
            assert chat(cached).status_code == 200  # cached keys keep serving
            resp = chat(uncached)
            assert resp.status_code == 503, resp.text
            assert int(resp.headers["retry-after"]) >= 1
            assert resp.json()["error"]["code"] == "store_unavailable"
            assert "Traceback" not in resp.text
        finally:
            psql(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")
        assert chat(uncached).status_code == 200  # and it recovers once the store is back
