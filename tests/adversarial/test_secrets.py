"""The operator's provider keys never reach a tenant, a log line or a stored trace.

A real aiohttp upstream echoes the key it received in the three ways real
upstreams do: a 401 quoting it, a 400 echoing the request headers, an HTML
502 page. For openai, anthropic and azure providers, the key appears in no
response, no log line, no stored span and no ``/admin/traces`` output.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from tests.support.aiohttp_thread import serve_in_thread
from tests.support.gateway import base_config, running_gateway

pytestmark = pytest.mark.integration
PROVIDER_KEY = "sk-proj-" + "Zq8vN3xLr7TwP2mK9sYb4HdJ6cVf1GgA"
ORG_TOKEN = "org-tok-" + "Hh5Rt8Wq2Ze6Uy3Io9Pa"
MODES = ["401", "400", "502"]


def _received_key(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:]
    return request.headers.get("x-api-key") or request.headers.get("api-key") or ""


async def echo(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    messages = body.get("messages") or [{}]
    content = messages[-1].get("content", "")
    if isinstance(content, list):  # anthropic content blocks
        content = "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    mode = str(content)
    key = _received_key(request)
    if mode == "401":
        message = f"Incorrect API key provided: {key}. You can find your API key at ..."
        payload = {"error": {"message": message, "type": "invalid_request_error"}}
        return web.json_response(payload, status=401)
    if mode == "400":
        headers = {str(k): v for k, v in request.headers.items()}
        message = "bad request; headers were " + orjson.dumps(headers).decode()
        return web.json_response({"error": {"message": message}}, status=400)
    page = (
        "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>"
        f"<h1>Bad Gateway</h1><pre>upstream auth {key} rejected by proxy</pre></body></html>"
    )
    return web.Response(status=502, text=page, content_type="text/html")


@pytest.fixture
def upstream() -> Iterator[str]:
    app = web.Application()
    app.router.add_post("/{tail:.*}", echo)
    with serve_in_thread(app) as url:
        yield url


def provider(kind: str, url: str) -> dict[str, Any]:
    headers = {"x-org-token": ORG_TOKEN}
    if kind == "openai":
        return {"type": "openai", "base_url": url + "/v1", "api_key": "env:PH_TEST_KEY",
                "headers": headers}  # fmt: skip
    if kind == "anthropic":
        return {"type": "anthropic", "base_url": url, "api_key": "env:PH_TEST_KEY",
                "headers": headers}  # fmt: skip
    return {"type": "azure", "endpoint": url, "api_key": "env:PH_TEST_KEY", "headers": headers}


def trace_text(admin: httpx.Client, trace_id: str) -> str:
    """``/admin/traces/{id}`` once the trace is stored (bounded poll on the observable row)."""
    deadline = time.monotonic() + 30
    while True:
        resp = admin.get(f"/admin/traces/{trace_id}")
        if resp.status_code == 200 and resp.json().get("spans"):
            return resp.text
        assert time.monotonic() < deadline, f"trace {trace_id} never stored: {resp.text}"
        time.sleep(0.05)


@pytest.mark.parametrize("kind", ["openai", "anthropic", "azure"])
def test_upstream_errors_never_carry_the_provider_key(
    kind: str,
    upstream: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("PH_TEST_KEY", PROVIDER_KEY)
    caplog.set_level(logging.DEBUG)
    config = base_config(
        f"sqlite:///{tmp_path}/ph.db",
        tmp_path,
        providers={"up": provider(kind, upstream)},
        models={"chat": {"targets": [{"provider": "up", "model": "m"}]}},
        telemetry={"flush_interval_s": 0.05},
    )
    seen: list[str] = []
    with running_gateway(config) as gw, gw.admin() as admin:
        key = gw.create_key()
        for mode in MODES:
            for stream in (False, True):
                resp = httpx.post(
                    gw.url + "/v1/chat/completions",
                    json={"model": "chat", "stream": stream,
                          "messages": [{"role": "user", "content": mode}]},
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=30,
                )  # fmt: skip
                assert resp.status_code == (int(mode) if mode != "502" else 502), resp.text
                seen.append(resp.text)
                seen.append(str(resp.headers))
                seen.append(trace_text(admin, resp.headers["x-pilothouse-trace-id"]))
        seen.append(admin.get("/admin/traces").text)
        seen.append(admin.get("/admin/usage").text)
    db = (tmp_path / "ph.db").read_bytes()
    for secret in (PROVIDER_KEY, ORG_TOKEN, PROVIDER_KEY[:16], ORG_TOKEN[8:]):
        assert secret.encode() not in db
        assert secret not in caplog.text
        for text in seen:
            assert secret not in text
    joined = "\n".join(seen)
    assert "Incorrect API key provided: [SECRET]" in joined  # the message is still useful
    assert "an HTML error page (502 Bad Gateway)" in joined
    assert "<html" not in joined.lower()
