"""Gemini provider against a real local server that speaks (and checks) the generateContent API.

The reply fixtures follow Google's documented wire format for
``generateContent``/``streamGenerateContent?alt=sse``/``batchEmbedContents``
(camelCase fields, ``usageMetadata``, ``promptFeedback``, SSE ``data:`` frames).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from pilothouse.config.load import parse_settings
from pilothouse.config.schema import Secret
from pilothouse.errors import ConfigError, InvalidRequestError, ProviderError
from pilothouse.providers.base import provider_class
from pilothouse.providers.gemini import GeminiConfig, GeminiProvider, VertexConfig
from pilothouse.providers.gemini_translate import ContentBlockedError
from tests.unit.providers.fake_upstream import FakeUpstream, Seen, sse_frame

KEY = "AIza-test-key"
MODEL = "gemini-2.5-flash"
TOP_LEVEL = {"contents", "systemInstruction", "generationConfig", "tools", "toolConfig"}
GEN_CONFIG = {
    "temperature", "topP", "seed", "presencePenalty", "frequencyPenalty", "maxOutputTokens",
    "candidateCount", "stopSequences", "responseMimeType", "responseJsonSchema",
}  # fmt: skip


def refuse(why: str, status: int = 400, kind: str = "INVALID_ARGUMENT") -> web.Response:
    return web.json_response(
        {"error": {"code": status, "message": why, "status": kind}}, status=status
    )


def gemini_rules(seen: Seen) -> web.StreamResponse | None:
    """What the real API insists on; a violation gets Gemini's own error body."""
    if seen.headers.get("x-goog-api-key") != KEY or "Authorization" in seen.headers:
        return refuse("API key not valid. Please pass a valid API key.", 400)
    body = seen.body
    if seen.path.endswith(":batchEmbedContents"):
        return None
    if unknown := set(body) - TOP_LEVEL:
        return refuse(f"Invalid JSON payload received. Unknown name {sorted(unknown)}")
    if unknown := set(body.get("generationConfig", {})) - GEN_CONFIG:
        return refuse(f"Unknown generationConfig fields {sorted(unknown)}")
    for i, turn in enumerate(body["contents"]):
        if turn["role"] not in ("user", "model") or not turn["parts"]:
            return refuse(f"contents[{i}]: bad role or empty parts")
        if i and body["contents"][i - 1]["role"] == turn["role"]:
            return refuse(f"contents[{i}]: roles must alternate")
    return None


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    server = await FakeUpstream(check=gemini_rules).start()
    yield server
    await server.stop()


@pytest.fixture
async def gemini(upstream: FakeUpstream) -> AsyncIterator[GeminiProvider]:
    provider = GeminiProvider(
        "gemini", GeminiConfig(type="gemini", base_url=upstream.url, api_key=Secret(KEY))
    )
    await provider.start()
    yield provider
    await provider.aclose()


def later() -> float:
    return time.monotonic() + 30


def response(parts: list[dict[str, Any]], finish: str = "STOP", **usage: int) -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": parts},
                "finishReason": finish,
                "index": 0,
                "safetyRatings": [
                    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}
                ],
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 12,
            "candidatesTokenCount": 5,
            "totalTokenCount": 17,
            **usage,
        },
        "modelVersion": "gemini-2.5-flash-001",
        "responseId": "resp-abc",
    }


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


async def test_text_chat_with_system_and_sampling(
    gemini: GeminiProvider, upstream: FakeUpstream
) -> None:
    upstream.json(response([{"text": "Bonjour"}]))
    request = {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Hello"},
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 50,
        "stop": "END",
        "seed": 7,
    }

    result = await gemini.chat(request, MODEL, later())

    assert upstream.last.path == f"/v1beta/models/{MODEL}:generateContent"
    assert upstream.last.body == {
        "contents": [{"role": "user", "parts": [{"text": "Hello"}]}],
        "systemInstruction": {"parts": [{"text": "You are terse.\n\nAnswer in French."}]},
        "generationConfig": {
            "temperature": 0.2,
            "topP": 0.9,
            "seed": 7,
            "maxOutputTokens": 50,
            "stopSequences": ["END"],
        },
    }
    ChatCompletion.model_validate(result.body)
    choice = result.body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Bonjour", "refusal": None}
    assert choice["finish_reason"] == "stop"
    assert result.body["model"] == "gemini-2.5-flash-001"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (12, 5)


async def test_usage_counts_cached_and_thinking_tokens(
    gemini: GeminiProvider, upstream: FakeUpstream
) -> None:
    upstream.json(
        response(
            [{"text": "thinking…", "thought": True}, {"text": "42"}],
            finish="MAX_TOKENS",
            cachedContentTokenCount=8,
            thoughtsTokenCount=30,
        )
    )

    result = await gemini.chat({"messages": [{"role": "user", "content": "q"}]}, MODEL, later())

    assert result.body["choices"][0]["message"]["content"] == "42"  # thoughts never leak
    assert result.body["choices"][0]["finish_reason"] == "length"
    assert (result.usage.input_tokens, result.usage.cached_input_tokens) == (12, 8)
    assert result.usage.output_tokens == 35 and not result.usage.estimated
    assert result.body["usage"]["prompt_tokens_details"] == {"cached_tokens": 8}


async def test_tools_round_trip(gemini: GeminiProvider, upstream: FakeUpstream) -> None:
    upstream.json(response([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]))
    request = {
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [WEATHER],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    }

    result = await gemini.chat(request, MODEL, later())

    ChatCompletion.model_validate(result.body)
    assert upstream.last.body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parametersJsonSchema": WEATHER["function"]["parameters"],  # type: ignore[index]
                }
            ]
        }
    ]
    assert upstream.last.body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    choice = result.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}

    # The answer to the call goes back as a functionResponse named after the function.
    upstream.json(response([{"text": "It is sunny."}]))
    follow_up = {
        "messages": [
            *request["messages"],  # type: ignore[list-item]
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": '{"sky": "clear"}'},
        ],
        "tools": [WEATHER],
    }
    await gemini.chat(follow_up, MODEL, later())
    assert upstream.last.body["contents"][1:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather",
                                                      "args": {"city": "Paris"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                         "response": {"sky": "clear"}}}]},
    ]  # fmt: skip


async def test_images_audio_and_json_schema(gemini: GeminiProvider, upstream: FakeUpstream) -> None:
    upstream.json(response([{"text": '{"n": 1}'}]))
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    request = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Count the cats"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp"}},
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                ],
            }
        ],
        "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
    }

    await gemini.chat(request, MODEL, later())

    assert upstream.last.body["contents"][0]["parts"] == [
        {"text": "Count the cats"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}},
        {"fileData": {"fileUri": "https://example.com/cat.webp", "mimeType": "image/webp"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
    ]
    assert upstream.last.body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }


async def test_blocked_prompt_is_a_clear_content_filter_error(
    gemini: GeminiProvider, upstream: FakeUpstream
) -> None:
    upstream.json(
        {
            "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
            "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
        }
    )

    with pytest.raises(ContentBlockedError) as caught:
        await gemini.chat({"messages": [{"role": "user", "content": "x"}]}, MODEL, later())

    assert caught.value.status == 400 and caught.value.code == "content_filter"
    assert not caught.value.retryable and "SAFETY" in caught.value.message


async def test_answer_withheld_for_safety_is_an_error_not_an_empty_reply(
    gemini: GeminiProvider, upstream: FakeUpstream
) -> None:
    blocked = response([], finish="SAFETY")
    del blocked["candidates"][0]["content"]
    upstream.json(blocked)

    with pytest.raises(ContentBlockedError, match="withheld"):
        await gemini.chat({"messages": [{"role": "user", "content": "x"}]}, MODEL, later())


async def test_upstream_errors_keep_their_status_and_message(
    gemini: GeminiProvider, upstream: FakeUpstream
) -> None:
    upstream.json(
        {"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}},
        status=429,
        headers={"Retry-After": "3"},
    )

    with pytest.raises(ProviderError) as caught:
        await gemini.chat({"messages": [{"role": "user", "content": "x"}]}, MODEL, later())

    assert caught.value.retryable and caught.value.retry_after == 3.0
    assert "Resource exhausted" in caught.value.message


async def test_stream_text_tool_call_and_usage(
    gemini: GeminiProvider, upstream: FakeUpstream
) -> None:
    first = response([{"text": "Hel"}], finish="FINISH_REASON_UNSPECIFIED")
    del first["candidates"][0]["finishReason"]
    second = response([{"text": "lo"}])
    second["candidates"][0].pop("finishReason")
    third = response(
        [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}],
        candidatesTokenCount=9,
    )
    upstream.sse([sse_frame(first), sse_frame(second), sse_frame(third)], piece=7)

    chunks = [
        c
        async for c in gemini.stream_chat(
            {"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER]}, MODEL, later()
        )
    ]

    assert upstream.last.path == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert upstream.last.query == {"alt": "sse"}
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content") or "" for d in deltas) == "Hello"
    (call,) = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert call["index"] == 0 and call["function"]["name"] == "get_weather"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert [f for f in finishes if f] == ["tool_calls"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 9


async def test_stream_cut_before_finish_is_a_retryable_failure(
    gemini: GeminiProvider, upstream: FakeUpstream
) -> None:
    partial = response([{"text": "Hel"}])
    del partial["candidates"][0]["finishReason"]
    upstream.sse([sse_frame(partial)])

    with pytest.raises(ProviderError, match="before the answer finished") as caught:
        async for _ in gemini.stream_chat(
            {"messages": [{"role": "user", "content": "hi"}]}, MODEL, later()
        ):
            pass
    assert caught.value.retryable


async def test_embeddings_batch(gemini: GeminiProvider, upstream: FakeUpstream) -> None:
    upstream.json({"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]})

    result = await gemini.embed(
        {"input": ["a", "b"], "dimensions": 2}, "text-embedding-004", later()
    )

    assert upstream.last.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert upstream.last.body["requests"][1] == {
        "model": "models/text-embedding-004",
        "content": {"parts": [{"text": "b"}]},
        "outputDimensionality": 2,
    }
    assert [d["embedding"] for d in result.body["data"]] == [[0.1, 0.2], [0.3, 0.4]]
    assert result.usage.estimated


async def test_vertex_urls_and_bearer_token(upstream: FakeUpstream) -> None:
    upstream.check = None
    upstream.json(response([{"text": "ok"}]))
    vertex = VertexConfig(project="my-proj", location="europe-west4", access_token=Secret("ya29.t"))
    provider = GeminiProvider(
        "vertex", GeminiConfig(type="gemini", base_url=upstream.url, vertex=vertex)
    )
    await provider.start()
    try:
        await provider.chat({"messages": [{"role": "user", "content": "x"}]}, MODEL, later())
    finally:
        await provider.aclose()

    assert upstream.last.path == (
        "/v1/projects/my-proj/locations/europe-west4/publishers/google/models/"
        f"{MODEL}:generateContent"
    )
    assert upstream.last.headers["Authorization"] == "Bearer ya29.t"
    assert "x-goog-api-key" not in upstream.last.headers


def test_bad_requests_are_400_naming_the_parameter() -> None:
    from pilothouse.providers.gemini_translate import to_gemini

    with pytest.raises(InvalidRequestError) as caught:
        to_gemini({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]})
    assert caught.value.param == "messages[0].tool_call_id"
    with pytest.raises(InvalidRequestError) as caught:
        to_gemini({"messages": [{"role": "user", "content": [{"type": "file", "file": {}}]}]})
    assert caught.value.param == "messages[0].content"


def test_config_needs_exactly_one_credential() -> None:
    assert provider_class("gemini") is GeminiProvider
    raw = {"providers": {"g": {"type": "gemini", "api_key": "env:GEMINI_KEY"}}}
    settings = parse_settings(raw, env={"GEMINI_KEY": KEY})
    config = settings.provider_configs["g"]
    assert isinstance(config, GeminiConfig) and config.api_key == Secret(KEY)
    with pytest.raises(ConfigError, match="exactly one of `api_key` or `vertex`"):
        parse_settings({"providers": {"g": {"type": "gemini"}}}, env={})
