"""Fallbacks, retries, breakers and streams against the chaos upstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.gateway import ThreadedGateway, base_config, running_gateway
from tests.support.ledger import usage_rows

pytestmark = pytest.mark.integration
MESSAGES = [{"role": "user", "content": "one two three"}]


def gateway_with(
    tmp_path: Path, providers: dict[str, Any], models: dict[str, Any], **extra: Any
) -> Any:
    config = base_config(
        f"sqlite:///{tmp_path}/ph.db", tmp_path, providers=providers, models=models, **extra
    )
    return running_gateway(config)


def post(gw: ThreadedGateway, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_falls_back_to_second_target_after_retries(tmp_path: Path) -> None:
    providers = {
        "a": {"type": "chaos", "script": ["error:500", "error:503"]},
        "b": {"type": "chaos"},
    }
    models = {
        "chat": {
            "targets": [
                {"provider": "a", "model": "gpt-4o-mini"},
                {"provider": "b", "model": "gpt-4o-mini"},
            ],
            "retries": 1,
        }
    }
    with gateway_with(tmp_path, providers, models) as gw:
        resp = post(gw, gw.create_key(), {"model": "chat", "messages": MESSAGES})
        assert resp.status_code == 200
        assert resp.headers["x-pilothouse-target"] == "b/gpt-4o-mini"
        assert resp.headers["x-pilothouse-attempts"] == "3"
        [row] = usage_rows(gw, request_id=resp.headers["x-request-id"])
        assert row["attempts"] == 3 and row["provider"] == "b" and row["status"] == 200


def test_client_errors_are_not_retried_or_failed_over(tmp_path: Path) -> None:
    providers = {"a": {"type": "chaos", "script": ["error:400"]}, "b": {"type": "chaos"}}
    models = {
        "chat": {
            "targets": [{"provider": "a", "model": "m"}, {"provider": "b", "model": "m"}],
            "retries": 3,
        }
    }
    with gateway_with(tmp_path, providers, models) as gw:
        resp = post(gw, gw.create_key(), {"model": "chat", "messages": MESSAGES})
        assert resp.status_code == 400
        assert resp.headers["x-pilothouse-attempts"] == "1"


def test_breaker_opens_and_traffic_skips_the_dead_target(tmp_path: Path) -> None:
    providers = {"dead": {"type": "chaos", "error_rate": 1.0}, "ok": {"type": "chaos"}}
    models = {
        "chat": {"targets": [{"provider": "dead", "model": "m"}, {"provider": "ok", "model": "m"}]}
    }
    routing = {"breaker": {"failure_threshold": 3, "cooldown_s": 3600}}
    with gateway_with(tmp_path, providers, models, routing=routing) as gw:
        key = gw.create_key()
        attempts = [
            post(gw, key, {"model": "chat", "messages": MESSAGES}).headers["x-pilothouse-attempts"]
            for _ in range(6)
        ]
        assert attempts[:3] == ["2", "2", "2"]
        assert attempts[3:] == ["1", "1", "1"], "breaker open: dead target skipped"
        assert gw.runtime is not None
        assert gw.runtime.providers["dead"].calls == 3  # type: ignore[attr-defined]


def test_stream_falls_back_before_first_byte(tmp_path: Path) -> None:
    providers = {"a": {"type": "chaos", "script": ["reset"]}, "b": {"type": "chaos"}}
    models = {
        "chat": {"targets": [{"provider": "a", "model": "m"}, {"provider": "b", "model": "m"}]}
    }
    with gateway_with(tmp_path, providers, models) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.create_key(), max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES, stream=True
        )
        assert raw.headers["x-pilothouse-target"] == "b/m"
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        assert text == "one two three"


def test_mid_stream_failure_ends_with_error_event_and_is_recorded(tmp_path: Path) -> None:
    providers = {"a": {"type": "chaos", "script": ["cut:3"]}, "b": {"type": "chaos"}}
    models = {
        "chat": {
            "targets": [
                {"provider": "a", "model": "gpt-4o-mini"},
                {"provider": "b", "model": "gpt-4o-mini"},
            ]
        }
    }
    with gateway_with(tmp_path, providers, models) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.create_key(), max_retries=0)
        received = []
        with pytest.raises(openai.APIError, match="mid-stream"):
            for chunk in client.chat.completions.create(
                model="chat", messages=MESSAGES, stream=True
            ):
                received.append(chunk)
        assert [c.choices[0].delta.content for c in received] == ["", "one", " two"]
        rows = usage_rows(gw)
        assert rows[-1]["error_type"] == "stream_interrupted"
        assert rows[-1]["provider"] == "a", "no fallback once bytes reached the client"
        assert rows[-1]["output_tokens"] > 0 and rows[-1]["estimated"] is True


def test_keepalive_comments_flow_while_upstream_is_silent(tmp_path: Path) -> None:
    providers = {"slow": {"type": "chaos", "latency_ms": {"dist": "fixed", "value": 400}}}
    models = {"chat": {"targets": [{"provider": "slow", "model": "m"}]}}
    with gateway_with(tmp_path, providers, models, server={"sse_keepalive_s": 0.05}) as gw:
        key = gw.create_key()
        with httpx.stream(
            "POST",
            gw.url + "/v1/chat/completions",
            json={"model": "chat", "messages": MESSAGES, "stream": True},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ) as resp:
            lines = [line for line in resp.iter_lines() if line]
        first_data = next(i for i, line in enumerate(lines) if line.startswith("data:"))
        assert first_data > 0 and all(line == ": keep-alive" for line in lines[:first_data])
        assert lines[-1] == "data: [DONE]"


def test_stream_costs_come_from_upstream_usage(tmp_path: Path) -> None:
    providers = {"c": {"type": "chaos"}}
    models = {"chat": {"targets": [{"provider": "c", "model": "gpt-4o-mini"}]}}
    with gateway_with(
        tmp_path, providers, models, prices={"gpt-4o-mini": {"input": "0.15", "output": "0.60"}}
    ) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.create_key(), max_retries=0)
        list(client.chat.completions.create(model="chat", messages=MESSAGES, stream=True))
        [row] = usage_rows(gw)
        # chaos counts words + 3 per message: 6 in, 3 out
        assert (row["input_tokens"], row["output_tokens"], row["estimated"]) == (6, 3, False)
        assert row["cost_pico"] == 6 * 150_000 + 3 * 600_000
        assert row["stream"] is True and row["ttft_ms"] is not None


def test_cache_hit_is_recorded_and_replayed_as_stream(tmp_path: Path) -> None:
    providers = {"c": {"type": "chaos"}}
    models = {
        "chat": {"targets": [{"provider": "c", "model": "gpt-4o-mini"}], "cache": {"ttl_s": 60}}
    }
    with gateway_with(tmp_path, providers, models) as gw:
        key = gw.create_key()
        body = {"model": "chat", "messages": MESSAGES}
        first, second = post(gw, key, body), post(gw, key, body)
        assert first.json()["choices"] == second.json()["choices"]
        assert second.headers["x-pilothouse-cache"] == "hit"
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
        text = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
            if c.choices
        )
        assert text == "one two three"
        fresh = httpx.post(
            gw.url + "/v1/chat/completions",
            json=body,
            timeout=30,
            headers={"Authorization": f"Bearer {key}", "Cache-Control": "no-store"},
        )
        assert "x-pilothouse-cache" not in fresh.headers
        rows = usage_rows(gw)
        assert [r["cache_hit"] for r in rows] == [False, True, True, False]
        assert all(r["cost_pico"] == 0 for r in rows if r["cache_hit"])
        assert gw.runtime is not None
        assert gw.runtime.providers["c"].calls == 2  # type: ignore[attr-defined]


def test_load_shedding_returns_503_with_retry_after(tmp_path: Path) -> None:
    providers = {"c": {"type": "chaos"}}
    models = {"chat": {"targets": [{"provider": "c", "model": "m"}]}}
    with gateway_with(tmp_path, providers, models) as gw:
        key = gw.create_key()
        assert gw.runtime is not None
        gw.runtime.in_flight = gw.runtime.settings.server.max_in_flight  # saturate
        resp = post(gw, key, {"model": "chat", "messages": MESSAGES})
        gw.runtime.in_flight = 0
        assert resp.status_code == 503 and resp.headers["retry-after"] == "1"
        assert resp.json()["error"]["code"] == "overloaded"


def test_every_request_writes_exactly_one_usage_record(tmp_path: Path) -> None:
    providers = {"c": {"type": "chaos"}, "bad": {"type": "chaos", "error_rate": 1.0}}
    models = {
        "chat": {"targets": [{"provider": "c", "model": "m"}]},
        "bad": {"targets": [{"provider": "bad", "model": "m"}]},
    }
    with gateway_with(tmp_path, providers, models) as gw:
        key = gw.create_key()
        ids = [
            post(gw, key, {"model": "chat", "messages": MESSAGES}),
            post(gw, key, {"model": "bad", "messages": MESSAGES}),
            post(gw, key, {"model": "nope", "messages": MESSAGES}),
            post(gw, "ph-wrong", {"model": "chat", "messages": MESSAGES}),
            post(gw, key, {"model": "chat", "messages": MESSAGES, "stream": True}),
        ]
        rows = usage_rows(gw)
        assert sorted(r["request_id"] for r in rows) == sorted(
            r.headers["x-request-id"] for r in ids
        )
        assert sorted(r["status"] for r in rows) == [200, 200, 401, 404, 502]


def test_client_leaving_mid_upload_is_recorded_as_499(tmp_path: Path) -> None:
    import socket

    providers = {"c": {"type": "chaos"}}
    models = {"chat": {"targets": [{"provider": "c", "model": "m"}]}}
    with gateway_with(tmp_path, providers, models) as gw:
        key = gw.create_key()
        with socket.create_connection(("127.0.0.1", gw.port)) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                + f"Authorization: Bearer {key}\r\n".encode()
                + b'Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"model":'
            )
        rows: list[dict[str, Any]] = []
        for _ in range(200):  # bounded wait for the server to notice the hang-up
            rows = usage_rows(gw)
            if rows:
                break
        assert [(r["status"], r["error_type"]) for r in rows] == [(499, "client_closed")]
