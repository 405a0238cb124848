"""The official `openai` client works unchanged against the gateway, errors included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.gateway import ThreadedGateway, base_config, running_gateway

pytestmark = pytest.mark.integration


@pytest.fixture(params=["memory", "redis"])
def gateway(
    request: pytest.FixtureRequest, store_url: str, tmp_path: Path, redis_prefix: str
) -> Iterator[ThreadedGateway]:
    """Every contract test runs on SQLite and PostgreSQL, with in-process and Redis state."""
    state: dict[str, object] = {}
    if request.param == "redis":
        state = {
            "redis": {"url": request.getfixturevalue("redis_url"), "prefix": redis_prefix},
            "cache": {"backend": "redis"},
        }
    config = base_config(
        store_url,
        tmp_path,
        providers={
            "chaos": {"type": "chaos"},
            "down": {"type": "chaos", "error_rate": 1.0, "error_status": 503},
            "slow": {"type": "chaos", "timeout_rate": 1.0},
        },
        models={
            "chat": {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}]},
            "other": {
                "targets": [{"provider": "chaos", "model": "gpt-4o-mini"}],
                "cache": {"ttl_s": 60},
            },
            "broken": {"targets": [{"provider": "down", "model": "gpt-4o-mini"}], "retries": 1},
            "stuck": {"targets": [{"provider": "slow", "model": "gpt-4o-mini"}], "timeout_s": 0.2},
            "embed": {"targets": [{"provider": "chaos", "model": "text-embedding-3-small"}]},
        },
        server={"max_body_bytes": 10_000},
        **state,
    )
    with running_gateway(config) as gw:
        yield gw


def client(gw: ThreadedGateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


MESSAGES = [{"role": "user", "content": "the quick brown fox"}]


def test_chat_completion_round_trip_with_headers(gateway: ThreadedGateway) -> None:
    c = client(gateway, gateway.create_key())
    raw = c.chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == "the quick brown fox"
    assert completion.usage is not None and completion.usage.completion_tokens == 4
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-pilothouse-target"] == "chaos/gpt-4o-mini"
    assert raw.headers["x-pilothouse-attempts"] == "1"


def test_streaming_with_usage(gateway: ThreadedGateway) -> None:
    c = client(gateway, gateway.create_key())
    stream = c.chat.completions.create(
        model="chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "the quick brown fox"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 7 and chunks[-1].usage.completion_tokens == 4


def test_streaming_without_usage_hides_usage_chunk(gateway: ThreadedGateway) -> None:
    c = client(gateway, gateway.create_key())
    chunks = list(c.chat.completions.create(model="chat", messages=MESSAGES, stream=True))
    assert all(ch.usage is None for ch in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_embeddings_and_models(gateway: ThreadedGateway) -> None:
    c = client(gateway, gateway.create_key(models=["chat", "embed"]))
    emb = c.embeddings.create(model="embed", input=["a b", "c"])
    assert len(emb.data) == 2 and emb.usage.prompt_tokens == 3
    assert sorted(m.id for m in c.models.list()) == ["chat", "embed"]


def test_missing_or_bad_key_is_authentication_error(gateway: ThreadedGateway) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(gateway, "ph-not-a-real-key").chat.completions.create(
            model="chat", messages=MESSAGES
        )
    resp = httpx.post(gateway.url + "/v1/chat/completions", json={})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "missing_api_key"


def test_model_not_allowed_is_permission_denied(gateway: ThreadedGateway) -> None:
    c = client(gateway, gateway.create_key(models=["other"]))
    with pytest.raises(openai.PermissionDeniedError) as info:
        c.chat.completions.create(model="chat", messages=MESSAGES)
    assert "may not use model `chat`" in info.value.message


def test_unknown_model_is_not_found(gateway: ThreadedGateway) -> None:
    c = client(gateway, gateway.create_key())
    with pytest.raises(openai.NotFoundError) as info:
        c.chat.completions.create(model="gpt-99", messages=MESSAGES)
    assert info.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "chat"}, "`messages` must be a non-empty array"),
        ({"model": "chat", "messages": "hi"}, "`messages` must be a non-empty array"),
        ({"model": 3, "messages": MESSAGES}, "`model` must be a non-empty string"),
        ({"model": "chat", "messages": MESSAGES, "max_tokens": -1}, "`max_tokens`"),
        ({"model": "chat", "messages": MESSAGES, "temperature": "hot"}, "`temperature`"),
        ({"model": "chat", "messages": [{"role": "robot", "content": "x"}]}, "role"),
        ({"model": "chat", "messages": MESSAGES, "n": 200}, "`n` must be an integer"),
    ],
)
def test_invalid_requests_are_precise_400s(
    gateway: ThreadedGateway, body: dict[str, object], message: str
) -> None:
    key = gateway.create_key()
    resp = httpx.post(
        gateway.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert resp.status_code == 400
    assert message in resp.json()["error"]["message"]
    assert "Traceback" not in resp.text


def test_malformed_json_and_huge_body(gateway: ThreadedGateway) -> None:
    key = gateway.create_key()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    bad = httpx.post(gateway.url + "/v1/chat/completions", content=b"{nope", headers=headers)
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
    huge = httpx.post(gateway.url + "/v1/chat/completions", content=b"x" * 20_000, headers=headers)
    assert huge.status_code == 413
    with pytest.raises(openai.APIStatusError) as info:
        client(gateway, key).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "y" * 20_000}]
        )
    assert info.value.status_code == 413


def test_rate_limit_is_429_with_retry_after(gateway: ThreadedGateway) -> None:
    c = client(gateway, gateway.create_key(rpm=2))
    c.chat.completions.create(model="chat", messages=MESSAGES)
    c.chat.completions.create(model="chat", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model="chat", messages=MESSAGES)
    assert int(info.value.response.headers["retry-after"]) >= 1
    assert info.value.code == "rate_limit_exceeded"


def test_spent_budget_is_insufficient_quota(gateway: ThreadedGateway) -> None:
    c = client(gateway, gateway.create_key(budget_usd="0.000001"))
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model="chat", messages=MESSAGES, max_tokens=50)
    assert info.value.code == "insufficient_quota"
    assert "budget exhausted" in info.value.message


def test_all_targets_failing_is_502_with_attempts(gateway: ThreadedGateway) -> None:
    key = gateway.create_key()
    resp = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "broken", "messages": MESSAGES},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert resp.status_code == 502
    assert resp.headers["x-pilothouse-attempts"] == "2"
    assert "all 1 target(s) for `broken` failed" in resp.json()["error"]["message"]
    with pytest.raises(openai.InternalServerError):
        client(gateway, key).chat.completions.create(model="broken", messages=MESSAGES)


def test_deadline_is_504(gateway: ThreadedGateway) -> None:
    key = gateway.create_key()
    resp = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "stuck", "messages": MESSAGES},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert resp.status_code == 504
    assert resp.json()["error"]["type"] == "upstream_error"


def test_health_is_open_everything_else_needs_a_key(gateway: ThreadedGateway) -> None:
    assert httpx.get(gateway.url + "/healthz").status_code == 200
    ready = httpx.get(gateway.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["store"] == "ok"
    for method, path in [
        ("GET", "/v1/models"),
        ("GET", "/admin/keys"),
        ("GET", "/admin/usage"),
        ("POST", "/v1/embeddings"),
    ]:
        assert httpx.request(method, gateway.url + path).status_code == 401


def test_admin_scope_is_separate(gateway: ThreadedGateway) -> None:
    key = gateway.create_key()
    resp = httpx.get(gateway.url + "/admin/keys", headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 403


def test_cache_hit_on_either_backend(gateway: ThreadedGateway) -> None:
    c = client(gateway, gateway.create_key())
    first = c.chat.completions.with_raw_response.create(model="other", messages=MESSAGES)
    second = c.chat.completions.with_raw_response.create(model="other", messages=MESSAGES)
    assert "x-pilothouse-cache" not in first.headers
    assert second.headers["x-pilothouse-cache"] == "hit"
    assert second.parse().choices[0].message.content == "the quick brown fox"
