"""Traces reconstruct requests; PII never reaches the store or OTLP; SLO alerts fire and resolve."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support.gateway import ADMIN_KEY, ThreadedGateway, base_config, running_gateway
from tests.support.ledger import stored_rows
from tests.support.receivers import http_sink

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
PII = (
    "Email jane.doe@example.com, card 4111 1111 1111 1111, "
    "key sk-proj-abcdefghijklmnopqrstuvwxyz123456"
)


def trace_of(gw: ThreadedGateway, request_id: str) -> dict[str, Any]:
    resp = httpx.get(f"{gw.url}/admin/traces/{request_id}", headers=ADMIN, timeout=30)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_streamed_retry_is_one_trace_with_both_attempts(store_url: str, tmp_path: Path) -> None:
    providers = {"c": {"type": "chaos", "script": ["error:503"]}}
    models = {"chat": {"targets": [{"provider": "c", "model": "gpt-4o-mini"}], "retries": 1}}
    config = base_config(
        store_url,
        tmp_path,
        providers=providers,
        models=models,
        prices={"gpt-4o-mini": {"input": "0.15", "output": "0.60"}},
    )
    with running_gateway(config) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.create_key(), max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="chat",
            messages=[{"role": "user", "content": "alpha beta"}],
            stream=True,
            stream_options={"include_usage": True},
            temperature=0.5,
            extra_headers={"x-pilothouse-metadata": '{"user": "u-1", "feature": "search"}'},
        )
        list(raw.parse())
        trace = trace_of(gw, raw.headers["x-request-id"])
    assert trace["trace_id"] == raw.headers["x-pilothouse-trace-id"]
    assert [a["outcome"] for a in trace["attempts"]] == ["error", "ok"]
    assert (trace["input_tokens"], trace["output_tokens"]) == (5, 2)
    assert trace["cost_usd"] == "0.00000195"  # 5 x 0.15e-6 + 2 x 0.6e-6
    assert trace["user"] == "u-1" and trace["feature"] == "search"
    assert trace["response"]["choices"][0]["message"]["content"] == "alpha beta"
    root = next(s for s in trace["spans"] if s["parent_span_id"] is None)
    attrs = root["attributes"]
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "chat"
    assert attrs["gen_ai.request.temperature"] == 0.5
    assert attrs["gen_ai.usage.output_tokens"] == 2
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert any(e["name"] == "gen_ai.first_token" for e in root["events"])
    assert trace["usage"]["attempts"] == 2


def test_traceparent_is_honoured_and_app_spans_join_the_trace(tmp_path: Path) -> None:
    config = base_config(f"sqlite:///{tmp_path}/t.db", tmp_path)
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with running_gateway(config) as gw:
        key = gw.create_key()
        resp = httpx.post(
            gw.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}", "traceparent": f"00-{trace_id}-{parent}-01"},
            json={"model": "chat", "messages": [{"role": "user", "content": "find docs"}]},
        )
        assert resp.headers["x-pilothouse-trace-id"] == trace_id
        now = time.time_ns()
        otlp_json = {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "rag-app"}}]
                    },
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": trace_id,
                                    "spanId": parent,
                                    "name": "retrieval",
                                    "kind": 3,
                                    "startTimeUnixNano": str(now - 5_000_000),
                                    "endTimeUnixNano": str(now),
                                    "attributes": [
                                        {
                                            "key": "retrieval.documents",
                                            "value": {"stringValue": "doc-7:0.91,doc-3:0.72"},
                                        }
                                    ],
                                }
                            ]
                        }
                    ],
                }
            ]
        }
        sent = httpx.post(
            gw.url + "/v1/traces",
            content=orjson.dumps(otlp_json),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        assert sent.status_code == 200, sent.text
        bad = httpx.post(
            gw.url + "/v1/traces",
            content=b"\x00garbage",
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/x-protobuf"},
        )
        assert bad.status_code == 400
        trace = trace_of(gw, resp.headers["x-request-id"])
    names = {s["name"]: s for s in trace["spans"]}
    assert names["retrieval"]["source"] == "app"
    assert names["retrieval"]["attributes"]["retrieval.documents"] == "doc-7:0.91,doc-3:0.72"
    root = next(s for s in trace["spans"] if s["name"] == "chat chat")
    assert root["parent_span_id"] == parent, "gateway span is a child of the app's span"


def test_pii_is_redacted_in_store_and_otlp_export(postgres_url: str, tmp_path: Path) -> None:
    with http_sink("/v1/traces") as (collector, received):
        config = base_config(
            postgres_url,
            tmp_path,
            telemetry={
                "capture_content": "redacted",
                "otlp_endpoint": collector,
                "flush_interval_s": 0.01,
            },
        )
        with running_gateway(config) as gw:
            key = gw.create_key()
            resp = httpx.post(
                gw.url + "/v1/chat/completions",
                json={"model": "chat", "messages": [{"role": "user", "content": PII}]},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert resp.json()["choices"][0]["message"]["content"] == PII, "answer untouched"
            trace = trace_of(gw, resp.headers["x-request-id"])
            assert received.arrived.wait(30)
        stored = orjson.dumps(trace).decode()
        exported = b"".join(received.bodies)
    for secret in ("jane.doe@example.com", "4111 1111 1111 1111", "sk-proj-abcdefghij"):
        assert secret not in stored
        assert secret.encode() not in exported
    assert "[EMAIL]" in stored and "[CARD]" in stored
    message = ExportTraceServiceRequest.FromString(received.bodies[0])
    names = [s.name for rs in message.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert "chat chat" in names and "chat gpt-4o-mini" in names
    inputs = [
        kv.value.string_value
        for rs in message.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
        for kv in s.attributes
        if kv.key == "gen_ai.input.messages"
    ]
    assert inputs and "[EMAIL]" in inputs[0]
    assert key not in stored and key.encode() not in exported


def test_capture_none_keeps_no_content(tmp_path: Path) -> None:
    config = base_config(
        f"sqlite:///{tmp_path}/t.db", tmp_path, telemetry={"capture_content": "none"}
    )
    with running_gateway(config) as gw:
        resp = httpx.post(
            gw.url + "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "secret plan"}]},
            headers={"Authorization": f"Bearer {gw.create_key()}"},
        )
        trace = trace_of(gw, resp.headers["x-request-id"])
    assert trace["request"] is None and "secret plan" not in orjson.dumps(trace).decode()


def test_trace_list_filters_and_paginates(tmp_path: Path) -> None:
    config = base_config(f"sqlite:///{tmp_path}/t.db", tmp_path)
    with running_gateway(config) as gw:
        key = gw.create_key()
        for i in range(5):
            httpx.post(
                gw.url + "/v1/chat/completions",
                json={"model": "chat", "messages": [{"role": "user", "content": f"n{i}"}]},
                headers={
                    "Authorization": f"Bearer {key}",
                    "x-pilothouse-metadata": orjson.dumps(
                        {"feature": "a" if i % 2 else "b"}
                    ).decode(),
                },
            )
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": "2", "feature": "b"} | ({"cursor": cursor} if cursor else {})
            page = httpx.get(gw.url + "/admin/traces", params=params, headers=ADMIN).json()
            seen += [t["request_id"] for t in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 3 and len(set(seen)) == 3
        bad = httpx.get(gw.url + "/admin/traces", params={"cursor": "zzz"}, headers=ADMIN)
        assert bad.status_code == 400


def test_metrics_need_a_scope_and_count_requests(tmp_path: Path) -> None:
    config = base_config(f"sqlite:///{tmp_path}/t.db", tmp_path)
    with running_gateway(config) as gw:
        key = gw.create_key()
        httpx.post(
            gw.url + "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert httpx.get(gw.url + "/metrics").status_code == 401
        assert (
            httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {key}"}).status_code
            == 403
        )
        scraper = gw.create_key(scopes=["metrics"])
        text = httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {scraper}"}).text
        models = httpx.get(gw.url + "/v1/models", headers={"Authorization": f"Bearer {scraper}"})
        assert models.status_code == 403, "a metrics-only key cannot call models"
    assert 'pilothouse_requests_total{alias="chat",provider="chaos",status="200"} 1.0' in text


def test_burn_rate_alert_fires_and_resolves_on_webhook(tmp_path: Path) -> None:
    with http_sink("/hook") as (sink, received):
        config = base_config(
            f"sqlite:///{tmp_path}/t.db",
            tmp_path,
            providers={"c": {"type": "chaos", "script": ["error:500"] * 20}},
            models={"chat": {"targets": [{"provider": "c", "model": "m"}]}},
            slo={
                "objectives": [{"name": "chat-availability", "alias": "chat", "objective": 0.99}],
                "webhook": {"url": sink + "/hook", "backoff_base_s": 0.0},
            },
        )
        with running_gateway(config) as gw:
            key = gw.create_key()
            for _ in range(20):
                httpx.post(
                    gw.url + "/v1/chat/completions",
                    json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
                    headers={"Authorization": f"Bearer {key}"},
                )
            assert gw.runtime is not None
            telemetry = gw.runtime.telemetry

            async def evaluate(at: float) -> list[Any]:
                return telemetry.evaluate(at)

            def at(t: float) -> list[Any]:
                fut = asyncio.run_coroutine_threadsafe(evaluate(t), gw.server_loop())
                return list(fut.result(30))

            now = time.time()
            fired = at(now)
            assert {a.labels["rule"] for a in fired if a.status == "firing"} >= {"page_fast"}
            assert at(now + 30) == [], "deduplicated while still firing"
            resolved = at(now + 7 * 60)  # the 5 m window no longer sees errors
            assert any(a.status == "resolved" and a.labels["rule"] == "page_fast" for a in resolved)
            status = httpx.get(gw.url + "/admin/slo", headers=ADMIN).json()
            assert status["data"][0]["name"] == "chat-availability"
        bodies = [orjson.loads(b) for b in received.bodies]
    kinds = [(b.get("status"), b.get("labels", {}).get("rule")) for b in bodies]
    assert ("firing", "page_fast") in kinds and ("resolved", "page_fast") in kinds
    assert stored_rows(f"sqlite:///{tmp_path}/t.db")[0]["status"] == 502
