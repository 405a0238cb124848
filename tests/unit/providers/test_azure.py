"""Azure OpenAI provider against a real local HTTP server."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pilothouse.config.load import parse_settings
from pilothouse.config.schema import Secret
from pilothouse.errors import ConfigError, ProviderError
from pilothouse.providers.azure import DEFAULT_API_VERSION, AzureConfig, AzureProvider
from pilothouse.providers.base import provider_class
from tests.unit.providers.fake_upstream import FakeUpstream, sse_frame

KEY = "azure-secret-key"
MESSAGES = [{"role": "user", "content": "hi"}]
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}
    ],
    "usage": {
        "prompt_tokens": 9,
        "completion_tokens": 2,
        "total_tokens": 11,
        "prompt_tokens_details": {"cached_tokens": 4},
    },
}


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    server = await FakeUpstream().start()
    yield server
    await server.stop()


def make(upstream: FakeUpstream, **extra: Any) -> AzureProvider:
    config = AzureConfig(
        type="azure",
        endpoint=upstream.url + "/",
        api_key=Secret(KEY),
        deployments={"gpt-4o": "prod-4o", "text-embedding-3-small": "emb"},
        **extra,
    )
    return AzureProvider("az", config)


@pytest.fixture
async def azure(upstream: FakeUpstream) -> AsyncIterator[AzureProvider]:
    provider = make(upstream)
    await provider.start()
    yield provider
    await provider.aclose()


def later() -> float:
    return time.monotonic() + 30


async def test_chat_uses_deployment_url_api_version_and_api_key(
    azure: AzureProvider, upstream: FakeUpstream
) -> None:
    upstream.json(COMPLETION)

    result = await azure.chat({"model": "alias", "messages": MESSAGES}, "gpt-4o", later())

    seen = upstream.last
    assert seen.method == "POST"
    assert seen.path == "/openai/deployments/prod-4o/chat/completions"
    assert seen.query == {"api-version": DEFAULT_API_VERSION}
    assert seen.headers["api-key"] == KEY
    assert "Authorization" not in seen.headers
    assert seen.body == {"messages": MESSAGES, "stream": False}
    assert result.body["choices"][0]["message"]["content"] == "hello"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (9, 2)
    assert result.usage.cached_input_tokens == 4


async def test_unmapped_model_is_its_own_deployment_and_api_version_is_configurable(
    upstream: FakeUpstream,
) -> None:
    provider = make(upstream, api_version="2025-01-01-preview")
    await provider.start()
    upstream.json(COMPLETION)
    try:
        await provider.chat({"messages": MESSAGES}, "my deployment/x", later())
    finally:
        await provider.aclose()
    assert upstream.last.path == "/openai/deployments/my%20deployment%2Fx/chat/completions"
    assert upstream.last.query == {"api-version": "2025-01-01-preview"}


async def test_stream_drops_content_filter_chunks_and_keeps_usage(
    azure: AzureProvider, upstream: FakeUpstream
) -> None:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    upstream.sse(
        [
            sse_frame(
                {
                    "id": "",
                    "object": "",
                    "created": 0,
                    "model": "",
                    "choices": [],
                    "prompt_filter_results": [{"prompt_index": 0}],
                }
            ),
            sse_frame({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}),
            sse_frame({**base, "choices": [{"index": 0, "delta": {"content": "hey"}}]}),
            sse_frame({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            sse_frame(
                {**base, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
            ),
            b"data: [DONE]\n\n",
        ],
        piece=7,
    )

    chunks = [c async for c in azure.stream_chat({"messages": MESSAGES}, "gpt-4o", later())]

    assert upstream.last.path == "/openai/deployments/prod-4o/chat/completions"
    assert upstream.last.body["stream"] is True
    assert upstream.last.body["stream_options"] == {"include_usage": True}
    assert [c["id"] for c in chunks] == ["c1"] * 4
    assert chunks[1]["choices"][0]["delta"]["content"] == "hey"
    assert chunks[-1]["usage"]["prompt_tokens"] == 3


async def test_embeddings_use_the_embedding_deployment(
    azure: AzureProvider, upstream: FakeUpstream
) -> None:
    upstream.json(
        {
            "object": "list",
            "data": [{"embedding": [0.1]}],
            "usage": {"prompt_tokens": 2, "total_tokens": 2},
        }
    )

    result = await azure.embed({"input": "x"}, "text-embedding-3-small", later())

    assert upstream.last.path == "/openai/deployments/emb/embeddings"
    assert upstream.last.body == {"input": "x"}
    assert result.usage.input_tokens == 2


async def test_throttling_is_retryable_with_retry_after(
    azure: AzureProvider, upstream: FakeUpstream
) -> None:
    upstream.json(
        {"error": {"code": "429", "message": "Requests to the deployment are throttled"}},
        status=429,
        headers={"Retry-After": "7"},
    )
    with pytest.raises(ProviderError) as info:
        await azure.chat({"messages": MESSAGES}, "gpt-4o", later())
    assert info.value.retryable
    assert info.value.retry_after == 7
    assert "throttled" in info.value.message


async def test_content_filter_400_is_passed_through_not_retried(
    azure: AzureProvider, upstream: FakeUpstream
) -> None:
    upstream.json(
        {"error": {"code": "content_filter", "message": "The response was filtered"}}, status=400
    )
    with pytest.raises(ProviderError) as info:
        await azure.chat({"messages": MESSAGES}, "gpt-4o", later())
    assert not info.value.retryable
    assert info.value.status == 400
    assert "filtered" in info.value.message


async def test_server_error_and_refused_connection_are_retryable(
    azure: AzureProvider, upstream: FakeUpstream
) -> None:
    upstream.raw(b"<html>bad gateway</html>", status=502, content_type="text/html")
    with pytest.raises(ProviderError) as info:
        await azure.chat({"messages": MESSAGES}, "gpt-4o", later())
    assert info.value.retryable and info.value.upstream_status == 502

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    dead = AzureProvider(
        "dead",
        AzureConfig(type="azure", endpoint=f"http://127.0.0.1:{closed_port}", api_key=Secret(KEY)),
    )
    await dead.start()
    try:
        with pytest.raises(ProviderError) as refused:
            await dead.chat({"messages": MESSAGES}, "gpt-4o", later())
    finally:
        await dead.aclose()
    assert refused.value.retryable


def test_config_from_yaml_shape_with_env_secret() -> None:
    raw = {
        "providers": {
            "az": {
                "type": "azure",
                "endpoint": "https://acme.openai.azure.com",
                "api_key": "env:AZ_KEY",
                "deployments": {"gpt-4o": "prod-4o"},
                "timeout_s": 20,
            }
        },
        "models": {"chat": {"targets": [{"provider": "az", "model": "gpt-4o"}]}},
    }
    settings = parse_settings(raw, env={"AZ_KEY": "sekrit-value-123"})
    config = settings.provider_configs["az"]
    assert isinstance(config, AzureConfig)
    assert config.api_key.get() == "sekrit-value-123"
    assert "sekrit" not in repr(config)
    assert config.api_version == DEFAULT_API_VERSION
    assert provider_class("azure") is AzureProvider


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"endpoint": "https://a.openai.azure.com"}, "api_key"),
        ({"endpoint": "acme", "api_key": "env:AZ_KEY"}, "endpoint must be a URL"),
        (
            {
                "endpoint": "https://a.openai.azure.com",
                "api_key": "env:AZ_KEY",
                "base_url": "https://x/v1",
            },
            "not `base_url`",
        ),
        (
            {"endpoint": "https://a.openai.azure.com", "api_key": "env:AZ_KEY", "deployment": "x"},
            "deployment",
        ),
    ],
)
def test_bad_config_is_refused_with_the_key_path(section: dict[str, Any], expected: str) -> None:
    raw = {"providers": {"az": {"type": "azure", **section}}}
    with pytest.raises(ConfigError) as info:
        parse_settings(raw, source="p.yaml", env={"AZ_KEY": "k"})
    assert "providers.az" in info.value.message
    assert expected in info.value.message
