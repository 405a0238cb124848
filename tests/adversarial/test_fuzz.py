"""Property-based fuzz of every JSON endpoint and header, through the real gateway.

Every route the app serves (but the console's HTML forms and `/admin/reload`)
is called with generated bodies, path parameters, query strings, the
``x-pilothouse-metadata`` header, content types, credentials and hostile values
of every other request header the gateway reads (``traceparent``,
``cache-control``, ``authorization``, ``x-api-key``, ``api-key``,
``x-request-id``). Properties:

* no 5xx and no traceback text in any response;
* no configured secret (admin key, provider key, the tenant's key) in any
  response, log line or stored row;
* no lost usage row: every accepted model request has its row in the ledger.

On SQLite and on PostgreSQL + Redis in-process, and once against
``pilothouse serve --workers 2`` with a small budget. ``max_examples`` is
bounded; CI runs hypothesis derandomized (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, select
from starlette.routing import Mount, Route

from pilothouse.config.load import parse_settings
from pilothouse.gateway.app import build_app
from pilothouse.store.db import create_engine
from pilothouse.store.tables import metadata, usage_records
from tests.adversarial.conftest import PROVIDER_SECRET, nested
from tests.support.gateway import (
    ADMIN_KEY,
    ProcessGateway,
    base_config,
    free_port,
    running_gateway,
    write_config,
)
from tests.support.services import temporary_postgres_database

pytestmark = pytest.mark.integration

SECRET_ENV = "PH_FUZZ_PROVIDER_KEY"
USAGE_PATHS = {
    "/v1/chat/completions",
    "/chat/completions",
    "/v1/embeddings",
    "/embeddings",
    "/v1/messages",
    "/v1/responses",
}
SKIPPED = {"/admin/reload", "/console/login", "/console/logout"}
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+")

# ---------------------------------------------------------------- strategies

HOSTILE = [
    "NaN", "Infinity", "1e20", "1e300", "-1", "0", "99999999d", "9999999999999h", "1.5h",
    "99999999999999999999", "18446744073709551615", "١٢", "²", "\x00", "", " ", "null",
    "x" * 300, "ü", "😀", "2026-13-45", "../../etc/passwd", "<script>", "'; DROP TABLE x;--",
]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(HOSTILE)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
roles = st.sampled_from(["user", "system", "assistant", "tool", "developer", "robot", ""])
content_parts = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "image_url", "input_audio", "file", "x"])},
        optional={"text": json_values, "image_url": json_values, "input_audio": json_values},
    ),
    max_size=3,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": roles | json_values},
        optional={
            "content": st.text(max_size=30) | content_parts | json_values,
            "tool_calls": json_values,
            "name": json_values,
        },
    ),
    max_size=3,
)
MODEL_FIELDS = {
    "model": st.sampled_from(["chat", "nope", ""]) | json_values,
    "messages": messages | json_values,
    "input": st.text(max_size=30) | messages | json_values,
    "stream": st.booleans() | json_values,
    "max_tokens": st.integers(-5, 64) | st.sampled_from([2**31, 2**64]) | json_values,
    "max_completion_tokens": st.integers(-5, 64) | json_values,
    "max_output_tokens": st.integers(-5, 64) | json_values,
    "temperature": st.floats(-1, 3) | json_values,
    "n": st.integers(0, 3) | json_values,
    "stop": json_values,
    "tools": json_values,
    "tool_choice": json_values,
    "response_format": json_values,
    "stream_options": json_values,
    "metadata": json_values,
    "system": json_values,
    "instructions": json_values,
    "previous_response_id": json_values,
}
ADMIN_FIELDS = {
    "name": st.text(max_size=12) | json_values,
    "scopes": st.lists(st.sampled_from(["inference", "admin", "metrics", "x"]), max_size=3)
    | json_values,
    "role": st.sampled_from(["admin", "viewer", "finance", "operator", "root"]) | json_values,
    "budget_usd": st.sampled_from(["NaN", "1e20", "0.01", "-1", 1e300, "Infinity"]) | json_values,
    "budget_period": st.sampled_from(["total", "day", "month", "year"]) | json_values,
    "rpm": json_values,
    "tpm": json_values,
    "models": json_values,
    "metadata": json_values,
    "model_limits": json_values,
    "max_concurrency": json_values,
    "expires_at": st.sampled_from(["2099-01-01T00:00:00Z", "yesterday"]) | json_values,
    "template": json_values,
    "messages": messages | json_values,
    "variables": json_values,
    "version": json_values,
    "grace_s": json_values,
}
FEEDBACK_FIELDS = {
    "request_id": st.text(max_size=10) | json_values,
    "task_id": json_values,
    "success": json_values,
    "score": st.floats() | json_values,
    "comment": json_values,
    "metadata": json_values,
}
span = st.fixed_dictionaries(
    {},
    optional={
        "traceId": st.sampled_from(["ab" * 16, "zz", ""]) | json_values,
        "spanId": st.sampled_from(["cd" * 8, ""]) | json_values,
        "name": json_values,
        "startTimeUnixNano": st.sampled_from([0, 2**64 - 1, 2**70, "1", -1]) | json_values,
        "endTimeUnixNano": st.sampled_from([0, 2**64 - 1, "x"]) | json_values,
        "attributes": json_values,
    },
)
otlp = st.fixed_dictionaries(
    {"resourceSpans": st.lists(st.fixed_dictionaries({"scopeSpans": st.lists(
        st.fixed_dictionaries({"spans": st.lists(span, max_size=2)}), max_size=2)}), max_size=2)}
) | json_values  # fmt: skip


def text_of(value: Any) -> bytes:
    """JSON text as a hostile client writes it: big ints, NaN and Infinity included."""
    return json.dumps(value, allow_nan=True).encode()


def deep(depth: int) -> bytes:
    return ('{"messages":' + nested(depth) + ',"model":"chat"}').encode()


HI = [{"role": "user", "content": "hi"}]
extras = {
    "max_tokens": st.integers(1, 16),
    "stream": st.booleans(),
    "temperature": st.floats(0, 1),
    "user": st.text(max_size=12),
    "metadata": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
}
VALID = {  # accepted requests, so the ledger has rows to lose
    "/v1/chat/completions": st.fixed_dictionaries(
        {"model": st.just("chat"), "messages": st.just(HI)}, optional=extras
    ),
    "/v1/embeddings": st.fixed_dictionaries(
        {"model": st.just("chat"), "input": st.text(max_size=20) | st.lists(st.text(), max_size=3)}
    ),
    "/v1/messages": st.fixed_dictionaries(
        {"model": st.just("chat"), "max_tokens": st.integers(1, 16), "messages": st.just(HI)},
        optional={"stream": st.booleans(), "system": st.text(max_size=12)},
    ),
    "/v1/responses": st.fixed_dictionaries(
        {"model": st.just("chat"), "input": st.just("hi") | st.just(HI)},
        optional={"max_output_tokens": st.integers(16, 32), "stream": st.booleans()},
    ),
}
VALID["/chat/completions"] = VALID["/v1/chat/completions"]
VALID["/embeddings"] = VALID["/v1/embeddings"]


def nest(depth: int) -> Any:
    """A Python value nested ``depth`` arrays deep (json.dumps writes up to ~900)."""
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


hostile = json_values | st.sampled_from(HOSTILE) | st.integers(60, 700).map(nest)
hostile = hostile | st.integers(60, 400).map(lambda d: {"user": nest(d)})
SAMPLE = {  # a sound body per kind of endpoint, to corrupt one field at a time
    "admin": {"name": "fuzzed", "scopes": ["inference"], "budget_usd": "1", "rpm": 5},
    "feedback": {"request_id": "req_x", "task_id": "t", "success": True, "score": 1},
    "otlp": {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "ab" * 16,
                                "spanId": "cd" * 8,
                                "name": "s",
                                "startTimeUnixNano": 1,
                                "endTimeUnixNano": 2,
                            }
                        ]
                    }
                ]
            }
        ]
    },
}


@st.composite
def corrupted(draw: Any, base: st.SearchStrategy[dict[str, Any]], fields: list[str]) -> bytes:
    """A sound body with one field (top level, in its first message, or in its first span)
    replaced by a hostile value: what finds the 500s random documents never reach."""
    doc = json.loads(json.dumps(draw(base)))
    value = draw(hostile)
    spot = draw(st.sampled_from(["top", "top", "message", "span"]))
    if spot == "message" and isinstance(doc.get("messages"), list) and doc["messages"]:
        key = draw(st.sampled_from(["role", "content", "name", "tool_calls", "tool_call_id"]))
        doc["messages"][0][key] = value
    elif spot == "span" and "resourceSpans" in doc:
        span_doc = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        key = draw(st.sampled_from([*span_doc, "attributes", "status", "kind", "parentSpanId"]))
        span_doc[key] = value
    else:
        doc[draw(st.sampled_from(fields))] = value
    return text_of(doc)


def body_for(path: str) -> st.SearchStrategy[bytes]:
    if path in VALID:
        base = VALID[path]
        fields = list(MODEL_FIELDS)
    elif path.endswith("count_tokens") or path.startswith("/v1/rag"):
        base, fields = VALID["/v1/messages"], list(MODEL_FIELDS)
    elif path == "/v1/feedback":
        base, fields = st.just(SAMPLE["feedback"]), list(FEEDBACK_FIELDS)
    elif path == "/v1/traces":
        base, fields = st.just(SAMPLE["otlp"]), ["resourceSpans"]
    else:
        base, fields = st.just(SAMPLE["admin"]), list(ADMIN_FIELDS)
    known = {**FEEDBACK_FIELDS, **ADMIN_FIELDS, **MODEL_FIELDS}
    generated = (otlp if path == "/v1/traces" else st.fixed_dictionaries({}, optional={
        k: known.get(k, json_values) for k in fields
    })).map(text_of)  # fmt: skip
    return st.one_of(
        base.map(text_of),
        corrupted(base, fields),
        corrupted(base, fields),
        corrupted(base, fields),
        generated,
        json_values.map(text_of),
        st.integers(50, 1200).map(deep),
        st.binary(max_size=64),
    )


def header_value(text: str) -> bytes:
    """What a client can put on the wire: no control characters, no edge whitespace."""
    return re.sub("[\x00-\x1f\x7f]", "", text).strip(" ").encode("utf-8")


metadata_header = st.one_of(
    json_values.map(lambda v: json.dumps(v, allow_nan=True)),
    st.dictionaries(st.sampled_from(["user", "feature", "team", "x"]), json_values).map(json.dumps),
    st.integers(10, 900).map(lambda d: '{"user":' + nested(d) + "}"),
    st.text(max_size=40),
    st.just('{"user": "' + "u" * 9000 + '"}'),
)
content_types = st.just("application/json") | st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
        "application/ジェイソン",
    ]
)
# Every other request header the gateway reads, with hostile values (the key headers
# carry garbage, never a real key: the credential draw covers those).
OTHER_HEADERS: dict[bytes, Any] = {
    b"traceparent": st.sampled_from(
        [
            "00-" + "0" * 32 + "-" + "0" * 16 + "-01",  # all-zero ids are invalid
            "00-" + "f" * 32 + "-" + "f" * 16 + "-ff",
            "ff-" + "a" * 32 + "-" + "b" * 16 + "-01",  # version ff is forbidden
            "00-" + "A" * 32 + "-" + "B" * 16 + "-01",  # upper case is invalid
            "00-" + "a" * 31 + "-" + "b" * 16 + "-01",
            "00-" + "a" * 32 + "-" + "b" * 16 + "-01-extra",
            "-" * 55,
        ]
    )
    | st.text(max_size=80),
    b"cache-control": st.sampled_from(
        ["no-cache", "no-store", "no-cache, no-store", "max-age=-1", "max-age=" + "9" * 40, ","]
    )
    | st.text(max_size=30),
    b"authorization": st.sampled_from(
        ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer ph-", "Bearer " + "ph-" * 3000, "ü"]
    )
    | st.text(max_size=40),
    b"x-api-key": st.sampled_from(["", "ph-", "ph-" + "x" * 5000]) | st.text(max_size=40),
    b"api-key": st.sampled_from(["", "ph-", "sk-"]) | st.text(max_size=40),
    b"x-request-id": st.sampled_from(["", "../../etc", "x" * 5000]) | st.text(max_size=40),
}
QUERY_KEYS = [
    "since", "until", "status", "limit", "cursor", "model", "key", "key_id", "user", "by",
    "q", "include_revoked", "alias", "feature", "team", "offset", "period", "group_by",
]  # fmt: skip
queries = st.dictionaries(
    st.sampled_from(QUERY_KEYS), st.sampled_from(HOSTILE) | st.text(max_size=12), max_size=4
)
segments = st.sampled_from(["x", "chat", "latest", "prod", "1", "..", "%00", "ü", "a" * 300])
segments = segments | st.text(min_size=1, max_size=12)


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # the route template, e.g. /admin/keys/{key_id}
    url: str
    credential: str  # right | wrong | none | other | garbled (a hostile authorization header)
    headers: list[tuple[bytes, bytes]]
    body: bytes | None
    query: dict[str, str]


def all_routes() -> list[tuple[str, str]]:
    """(method, path template) for every route the real app serves, fuzzable ones only."""
    cfg = {"providers": {"c": {"type": "chaos"}}, "models": {"chat": {"targets": []}}}
    cfg["models"]["chat"]["targets"] = [{"provider": "c", "model": "m"}]
    app = build_app(parse_settings(cfg))
    found: list[tuple[str, str]] = []

    def walk(routes: Any, prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount):
                walk(route.routes, prefix + route.path)
            elif isinstance(route, Route):
                path = prefix + route.path
                for method in sorted(route.methods or ()):
                    if method != "HEAD" and path not in SKIPPED and not path.startswith("/console"):
                        found.append((method, path))

    walk(app.routes, "")
    return found


ROUTES = all_routes()
MODEL_ROUTES = [(m, p) for m, p in ROUTES if p in USAGE_PATHS]


@st.composite
def calls(draw: Any) -> Call:
    method, template = draw(st.sampled_from(MODEL_ROUTES) | st.sampled_from(ROUTES))
    url = re.sub(
        r"\{[^}]+\}", lambda _m: quote(draw(segments), safe=""), template
    )  # each parameter its own draw
    headers: list[tuple[bytes, bytes]] = []
    if draw(st.booleans()):
        headers.append((b"x-pilothouse-metadata", header_value(draw(metadata_header))))
    body = None
    if method in ("POST", "PUT", "PATCH"):
        body = draw(body_for(template))
        headers.append((b"content-type", header_value(draw(content_types))))
    for name in draw(st.lists(st.sampled_from(sorted(OTHER_HEADERS)), max_size=2, unique=True)):
        headers.append((name, header_value(draw(OTHER_HEADERS[name]))))
    credential = draw(st.sampled_from(["right"] * 6 + ["wrong", "none", "other"]))
    if any(name == b"authorization" for name, _value in headers):
        credential = "garbled"  # the drawn header is the only credential sent
    query = draw(queries) if method == "GET" else {}
    return Call(method, template, url, credential, headers, body, query)


# ---------------------------------------------------------------- the harness


@dataclass
class Target:
    url: str
    tenant_key: str
    secrets: tuple[str, ...]
    accepted: list[str] = field(default_factory=list)  # request ids of 2xx model requests
    seen: int = 0

    def send(self, client: httpx.Client, call: Call) -> httpx.Response:
        headers = list(call.headers)
        admin_side = call.path.startswith("/admin") or call.path == "/openapi.json"
        secret = {
            "right": ADMIN_KEY if admin_side else self.tenant_key,
            "other": self.tenant_key if admin_side else ADMIN_KEY,
            "wrong": "ph-" + secrets.token_urlsafe(8),
        }.get(call.credential)
        if secret is not None:
            headers.append((b"authorization", f"Bearer {secret}".encode()))
        return client.request(
            call.method, self.url + call.url, headers=headers, content=call.body, params=call.query
        )

    def check(self, call: Call, resp: httpx.Response) -> None:
        self.seen += 1
        where = (call, resp.status_code, resp.text[:500])
        assert resp.status_code < 500, where
        assert not TRACEBACK.search(resp.text), where
        wire = resp.text + "\n" + "\n".join(f"{k}: {v}" for k, v in resp.headers.items())
        for value in self.secrets:
            assert value not in wire, (call, "a configured secret is in the response")
        if resp.status_code >= 400 and resp.headers.get("content-type", "").startswith(
            "application/json"
        ):
            error = resp.json()["error"]
            assert isinstance(error["message"], str) and error["message"], where
        if 200 <= resp.status_code < 300 and call.path in USAGE_PATHS:
            self.accepted.append(resp.headers["x-request-id"])


# Sent first and required to succeed, so every run checks at least one accepted request
# end to end (usage row, no leak) however few of the generated calls happen to be sound.
SOUND = Call(
    "POST", "/v1/chat/completions", "/v1/chat/completions", "right",
    [(b"content-type", b"application/json")],
    json.dumps(  # max_tokens: its worst case fits the two-worker run's small budget
        {"model": "chat", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    ).encode(), {},
)  # fmt: skip


def fuzz(target: Target, max_examples: int) -> None:
    client = httpx.Client(timeout=60)
    first = target.send(client, SOUND)
    target.check(SOUND, first)
    assert 200 <= first.status_code < 300, ("the sound request was refused", first.text[:500])

    @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(call=calls())
    def run(call: Call) -> None:
        target.check(call, target.send(client, call))

    try:
        run()
    finally:
        client.close()


class Lines(logging.Handler):
    """Every log record the gateway writes, formatted with its traceback (if any)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured_logs() -> Iterator[Lines]:
    handler = Lines()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn"), logging.getLogger("pilothouse")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
    logging.getLogger("pilothouse").setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


@pytest.fixture
def provider_secret() -> Iterator[str]:
    before = os.environ.get(SECRET_ENV)
    os.environ[SECRET_ENV] = PROVIDER_SECRET  # read by `pilothouse serve` children too
    try:
        yield PROVIDER_SECRET
    finally:
        if before is None:
            os.environ.pop(SECRET_ENV, None)
        else:
            os.environ[SECRET_ENV] = before


def fuzz_config(store_url: str, tmp: Path, **extra: Any) -> dict[str, Any]:
    """Chaos upstream for every alias; a provider key configured (never used) to be leaked."""
    return base_config(
        store_url,
        tmp,
        providers={
            "chaos": {"type": "chaos"},
            "vendor": {
                "type": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "api_key": f"env:{SECRET_ENV}",
            },
        },
        models={"chat": {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}]}},
        **extra,
    )


def stored(store_url: str) -> tuple[set[str], str]:
    """(request ids in the usage ledger, every stored row of every table as text)."""

    async def fetch() -> tuple[set[str], str]:
        engine = create_engine(store_url)
        try:
            async with engine.connect() as conn:
                ids = {r[0] for r in await conn.execute(select(usage_records.c.request_id))}
                present = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
                dump = []
                for table in metadata.sorted_tables:
                    if table.name not in present:  # one engine's own (SQLite search rows)
                        continue
                    with_rows = await conn.execute(select(table))
                    dump += [repr(tuple(r)) for r in with_rows]
                return ids, "\n".join(dump)
        finally:
            await engine.dispose()

    return asyncio.run(fetch())


def assert_nothing_lost_or_leaked(target: Target, store_url: str, logs: list[str]) -> None:
    assert target.seen > 0 and target.accepted, "no request was accepted: nothing was tested"
    ids, rows = stored(store_url)
    lost = [rid for rid in target.accepted if rid not in ids]
    assert not lost, f"{len(lost)} of {len(target.accepted)} accepted requests have no usage row"
    text = "\n".join(logs)
    for value in target.secrets:
        assert value not in rows, "a configured secret is in a stored row"
        assert value not in text, "a configured secret is in a log line"
    assert "Exception in ASGI application" not in text


# ---------------------------------------------------------------- the tests


@pytest.fixture(params=["sqlite", "postgresql+redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/fuzz.db", {}
        return
    request.getfixturevalue("postgres_server")
    redis_url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    with temporary_postgres_database() as url:
        yield url, {"redis": {"url": redis_url, "prefix": prefix}}


def test_fuzzed_requests_in_process(
    backend: tuple[str, dict[str, Any]],
    tmp_path: Path,
    provider_secret: str,
    captured_logs: Lines,
) -> None:
    store_url, extra = backend
    with running_gateway(fuzz_config(store_url, tmp_path, **extra)) as gw:
        key = gw.create_key(name="fuzz", budget_usd="5")
        target = Target(gw.url, key, (ADMIN_KEY, provider_secret, key))
        fuzz(target, max_examples=int(os.environ.get("PH_FUZZ_EXAMPLES", "120")))
        with gw.admin() as admin:  # flushes the ledger queue before the count
            assert admin.get("/admin/usage").status_code == 200
    assert_nothing_lost_or_leaked(target, store_url, captured_logs.lines)


def test_fuzzed_requests_against_two_workers(
    tmp_path: Path,
    postgres_url: str,
    redis_url: str,
    redis_prefix: str,
    provider_secret: str,
) -> None:
    cfg = fuzz_config(postgres_url, tmp_path, redis={"url": redis_url, "prefix": redis_prefix})
    path = write_config(tmp_path / "pilothouse.yaml", cfg)
    port = free_port()
    gw = ProcessGateway(path, port, {})
    try:  # stopped even when the start itself times out
        gw.start_command(["serve", "--config", str(path), "--port", str(port), "--workers", "2"])
        with httpx.Client(base_url=gw.url, timeout=30) as admin:
            made = admin.post(
                "/admin/keys",
                json={"name": "fuzz", "budget_usd": "0.002"},  # a small budget: refusals too
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            )
        assert made.status_code == 201, made.text
        key = made.json()["key"]
        target = Target(gw.url, key, (ADMIN_KEY, provider_secret, key))
        fuzz(target, max_examples=60)
    finally:
        gw.stop()  # SIGTERM: both workers drain their ledger queues before exiting
    assert_nothing_lost_or_leaked(target, postgres_url, gw.output)
    assert not TRACEBACK.search("".join(gw.output)), "".join(gw.output)[-3000:]


# ---------------------------------------------------------------- raw framing

BODY = b'{"model": "chat", "messages": [{"role": "user", "content": "hi"}]}'
FRAMINGS = {
    "non-ascii digits": "Content-Length: ١٢\r\n".encode(),
    "superscript digit": "Content-Length: ²\r\n".encode(),
    "huge": b"Content-Length: " + b"9" * 40 + b"\r\n",
    "negative": b"Content-Length: -5\r\n",
    "duplicate, same": b"Content-Length: %d\r\nContent-Length: %d\r\n" % (len(BODY), len(BODY)),
    "duplicate, different": b"Content-Length: %d\r\nContent-Length: 5\r\n" % len(BODY),
    "list": b"Content-Length: %d, %d\r\n" % (len(BODY), len(BODY)),
    "transfer-encoding and content-length": b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n"
    % len(BODY),
    "unknown transfer-encoding": b"Transfer-Encoding: gzip\r\n",
}


@pytest.fixture(scope="module")
def sqlite_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    tmp = tmp_path_factory.mktemp("fuzz-bytes")
    with running_gateway(base_config(f"sqlite:///{tmp}/b.db", tmp)) as gw:
        yield gw, gw.create_key()


def raw_status(port: int, head: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + BODY)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize("framing", sorted(FRAMINGS))
def test_malformed_body_framing_on_the_wire_is_400(
    sqlite_gateway: tuple[Any, str], framing: str
) -> None:
    gw, key = sqlite_gateway
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {key}\r\n".encode()
        + FRAMINGS[framing]
        + b"\r\n"
    )
    assert raw_status(gw.port, head) in (400, 413)  # refused by the parser or HeaderLimits


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=200))
def test_fuzzed_bytes_never_yield_5xx(sqlite_gateway: tuple[Any, str], raw: bytes) -> None:
    gw, key = sqlite_gateway
    resp = httpx.post(
        gw.url + "/v1/chat/completions",
        content=raw,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert resp.status_code in (200, 400), (resp.status_code, resp.text)
    assert not TRACEBACK.search(resp.text)
