"""Anthropic provider against a real local server that speaks (and checks) the Messages API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from pilothouse.config.load import parse_settings
from pilothouse.config.schema import Secret
from pilothouse.errors import ConfigError, InvalidRequestError, ProviderError
from pilothouse.providers.anthropic import AnthropicConfig, AnthropicProvider
from pilothouse.providers.anthropic_translate import JSON_OBJECT_INSTRUCTION
from pilothouse.providers.base import provider_class
from tests.unit.providers.fake_upstream import FakeUpstream, Seen, sse_frame

KEY = "sk-ant-test-key"
MODEL = "claude-sonnet-4-5"
TOP_LEVEL = {
    "model", "max_tokens", "messages", "system", "stop_sequences", "temperature", "top_p",
    "tools", "tool_choice", "metadata", "stream",
}  # fmt: skip


def refuse(why: str) -> web.Response:
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": why}}
    return web.json_response(body, status=400)


def anthropic_rules(seen: Seen) -> web.StreamResponse | None:
    """What the real API insists on; a violation gets Anthropic's own 400."""
    if seen.path != "/v1/messages" or seen.headers.get("x-api-key") != KEY:
        return web.json_response({"type": "error", "error": {"type": "authentication_error",
                                                              "message": "invalid x-api-key"}},
                                 status=401)  # fmt: skip
    if seen.headers.get("anthropic-version") != "2023-06-01" or "Authorization" in seen.headers:
        return refuse("bad headers")
    body = seen.body
    if unknown := set(body) - TOP_LEVEL:
        return refuse(f"unknown fields {sorted(unknown)}")
    if not isinstance(body.get("max_tokens"), int) or not body.get("messages"):
        return refuse("max_tokens and messages are required")
    if "tool_choice" in body and "tools" not in body:
        return refuse("tool_choice requires tools")
    if any(set(t) - {"name", "description", "input_schema"} for t in body.get("tools", [])):
        return refuse("bad tool definition")
    previous_tool_ids: set[str] = set()
    for i, turn in enumerate(body["messages"]):
        if turn["role"] != ("user" if i % 2 == 0 else "assistant"):
            return refuse("roles must alternate, starting with user")
        blocks = turn["content"]
        if not blocks or any(b["type"] == "text" and not b["text"] for b in blocks):
            return refuse(f"messages.{i}: content must be non-empty")
        results = [b["tool_use_id"] for b in blocks if b["type"] == "tool_result"]
        if set(results) - previous_tool_ids:
            return refuse(f"messages.{i}: tool_result without a matching tool_use")
        if results and blocks[0]["type"] != "tool_result":
            return refuse(f"messages.{i}: tool_result blocks must come first")
        previous_tool_ids = {b["id"] for b in blocks if b["type"] == "tool_use"}
    return None


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    server = await FakeUpstream(check=anthropic_rules).start()
    yield server
    await server.stop()


@pytest.fixture
async def claude(upstream: FakeUpstream) -> AsyncIterator[AnthropicProvider]:
    provider = AnthropicProvider(
        "claude", AnthropicConfig(type="anthropic", base_url=upstream.url, api_key=Secret(KEY))
    )
    await provider.start()
    yield provider
    await provider.aclose()


def later() -> float:
    return time.monotonic() + 30


def message(content: list[dict[str, Any]], stop_reason: str = "end_turn", **usage: int) -> Any:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 7, **usage},
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
    claude: AnthropicProvider, upstream: FakeUpstream
) -> None:
    upstream.json(message([{"type": "text", "text": "Bonjour"}]))
    request = {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Hello"},
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "user": "u-42",
    }

    result = await claude.chat(request, MODEL, later())

    assert upstream.last.body == {
        "model": MODEL,
        "max_tokens": 4096,
        "system": "You are terse.\n\nAnswer in French.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-42"},
    }
    ChatCompletion.model_validate(result.body)
    choice = result.body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Bonjour", "refusal": None}
    assert choice["finish_reason"] == "stop"
    assert result.body["model"] == "claude-sonnet-4-5-20250929"


async def test_usage_counts_cache_reads_and_writes_as_input(
    claude: AnthropicProvider, upstream: FakeUpstream
) -> None:
    upstream.json(
        message(
            [{"type": "text", "text": "ok"}],
            stop_reason="max_tokens",
            cache_creation_input_tokens=5,
            cache_read_input_tokens=20,
        )
    )
    request = {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 3}

    result = await claude.chat(request, MODEL, later())

    assert upstream.last.body["max_tokens"] == 3
    assert (result.usage.input_tokens, result.usage.cached_input_tokens) == (35, 20)
    assert result.usage.output_tokens == 7 and not result.usage.estimated
    assert result.body["usage"] == {
        "prompt_tokens": 35,
        "completion_tokens": 7,
        "total_tokens": 42,
        "prompt_tokens_details": {"cached_tokens": 20},
    }
    assert result.body["choices"][0]["finish_reason"] == "length"


async def test_tool_definitions_and_tool_use_answer(
    claude: AnthropicProvider, upstream: FakeUpstream
) -> None:
    upstream.json(
        message(
            [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                 "input": {"city": "Paris"}},
            ],
            stop_reason="tool_use",
        )
    )  # fmt: skip
    request = {
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [WEATHER],
        "tool_choice": "auto",
    }

    result = await claude.chat(request, MODEL, later())

    ChatCompletion.model_validate(result.body)
    assert upstream.last.body["tools"] == [
        {
            "name": "get_weather",
            "input_schema": WEATHER["function"]["parameters"],  # type: ignore[index]
            "description": "Weather for a city",
        }
    ]
    assert upstream.last.body["tool_choice"] == {"type": "auto"}
    reply = result.body["choices"][0]["message"]
    assert reply["content"] == "Checking."
    assert reply["tool_calls"] == [
        {
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]
    assert result.body["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ({"type": "function", "function": {"name": "get_weather"}}, None,
         {"type": "tool", "name": "get_weather"}),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ],
)  # fmt: skip
async def test_tool_choice_forms(
    claude: AnthropicProvider,
    upstream: FakeUpstream,
    tool_choice: Any,
    parallel: Any,
    expected: dict[str, Any],
) -> None:
    upstream.json(message([{"type": "text", "text": "ok"}]))
    request: dict[str, Any] = {"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER]}
    if tool_choice is not None:
        request["tool_choice"] = tool_choice
    if parallel is not None:
        request["parallel_tool_calls"] = parallel
    await claude.chat(request, MODEL, later())
    assert upstream.last.body["tool_choice"] == expected


async def test_multi_turn_tool_results_become_one_user_turn(
    claude: AnthropicProvider, upstream: FakeUpstream
) -> None:
    upstream.json(message([{"type": "text", "text": "Paris 18C, Rome 24C."}]))
    calls = [
        {"id": "toolu_1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "toolu_2", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
    ]  # fmt: skip
    request = {
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_2",
             "content": [{"type": "text", "text": "24C"}]},
            {"role": "user", "content": "Summarise."},
        ],
        "tools": [WEATHER],
    }  # fmt: skip

    result = await claude.chat(request, MODEL, later())

    assert upstream.last.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                 "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather",
                 "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_2",
                 "content": [{"type": "text", "text": "24C"}]},
                {"type": "text", "text": "Summarise."},
            ],
        },
    ]  # fmt: skip
    assert result.body["choices"][0]["message"]["content"] == "Paris 18C, Rome 24C."


async def test_images_and_merged_user_turns(
    claude: AnthropicProvider, upstream: FakeUpstream
) -> None:
    upstream.json(message([{"type": "text", "text": "A cat."}]))
    request = {
        "messages": [
            {"role": "user", "content": "Look:"},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                    {"type": "text", "text": "What is it?"},
                ],
            },
        ]
    }

    await claude.chat(request, MODEL, later())

    assert upstream.last.body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": "iVBORw0K"}},
                {"type": "image", "source": {"type": "url",
                                             "url": "https://example.com/cat.jpg"}},
                {"type": "text", "text": "What is it?"},
            ],
        }
    ]  # fmt: skip


async def test_response_format_becomes_a_system_instruction(
    claude: AnthropicProvider, upstream: FakeUpstream
) -> None:
    upstream.json(message([{"type": "text", "text": '{"a": 1}'}]))
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    request = {
        "messages": [{"role": "system", "content": "Be exact."}, {"role": "user", "content": "a?"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
    }
    await claude.chat(request, MODEL, later())
    system = upstream.last.body["system"]
    assert system.startswith("Be exact.\n\n" + JSON_OBJECT_INSTRUCTION)
    assert orjson.dumps(schema).decode() in system


@pytest.mark.parametrize(
    "request_body",
    [
        {"messages": [{"role": "user", "content": "x"}], "n": 2},
        {"messages": [{"role": "system", "content": "only system"}]},
        {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url",
                                                     "image_url": {"url": "ftp://x"}}]}]},
        {"messages": [{"role": "tool", "content": "no id"}]},
        {"messages": [{"role": "assistant", "tool_calls": [
            {"id": "t", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]},
        {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search"}]},
        {"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER],
         "tool_choice": "sometimes"},
    ],
)  # fmt: skip
async def test_untranslatable_requests_fail_before_any_upstream_call(
    claude: AnthropicProvider, upstream: FakeUpstream, request_body: dict[str, Any]
) -> None:
    with pytest.raises(InvalidRequestError):
        await claude.chat(request_body, MODEL, later())
    assert upstream.seen == []


# -- streaming --------------------------------------------------------------------------


def events(*payloads: dict[str, Any]) -> list[bytes]:
    return [sse_frame(p, event=p["type"]) for p in payloads]


def start(**usage: int) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": "msg_s1", "type": "message", "role": "assistant", "content": [],
            "model": "claude-sonnet-4-5-20250929", "stop_reason": None,
            "usage": {"input_tokens": 25, "output_tokens": 1, **usage},
        },
    }  # fmt: skip


def text_delta(index: int, text: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index,
            "delta": {"type": "text_delta", "text": text}}  # fmt: skip


def finish(stop_reason: str, output_tokens: int) -> dict[str, Any]:
    return {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": output_tokens}}  # fmt: skip


async def stream(claude: AnthropicProvider, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Collect a stream, checking each chunk is one the official openai client accepts."""
    chunks = [c async for c in claude.stream_chat(request, MODEL, later())]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    return chunks


HI = {"messages": [{"role": "user", "content": "hi"}]}


async def test_stream_text_chunks_finish_and_usage(
    claude: AnthropicProvider, upstream: FakeUpstream
) -> None:
    upstream.sse(
        events(
            start(cache_read_input_tokens=100),
            {"type": "content_block_start", "index": 0,
             "content_block": {"type": "text", "text": ""}},
            {"type": "ping"},
            text_delta(0, "Hello"),
            text_delta(0, " world"),
            {"type": "content_block_stop", "index": 0},
            finish("end_turn", 12),
            {"type": "message_stop"},
        ),
        piece=9,  # split frames across writes: the parser must reassemble lines
    )  # fmt: skip

    chunks = await stream(claude, HI)

    assert upstream.last.body["stream"] is True
    assert {(c["id"], c["created"], c["model"]) for c in chunks} == {
        ("msg_s1", chunks[0]["created"], "claude-sonnet-4-5-20250929")
    }
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert deltas == ["Hello", " world"]
    assert chunks[-2]["choices"][0] == {
        "index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"
    }  # fmt: skip
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 125,
        "completion_tokens": 12,
        "total_tokens": 137,
        "prompt_tokens_details": {"cached_tokens": 100},
    }


async def test_stream_tool_calls_are_indexed_and_arguments_assemble(
    claude: AnthropicProvider, upstream: FakeUpstream
) -> None:
    def tool_start(index: int, tool_id: str) -> dict[str, Any]:
        return {"type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": tool_id, "name": "get_weather",
                                  "input": {}}}  # fmt: skip

    def json_delta(index: int, partial: str) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": partial}}  # fmt: skip

    upstream.sse(
        events(
            start(),
            {"type": "content_block_start", "index": 0,
             "content_block": {"type": "text", "text": ""}},
            text_delta(0, "Let me check."),
            {"type": "content_block_stop", "index": 0},
            tool_start(1, "toolu_a"),
            json_delta(1, ""),
            json_delta(1, '{"city": "Pa'),
            json_delta(1, 'ris"}'),
            {"type": "content_block_stop", "index": 1},
            tool_start(2, "toolu_b"),
            json_delta(2, '{"city": "Rome"}'),
            {"type": "content_block_stop", "index": 2},
            finish("tool_use", 40),
            {"type": "message_stop"},
        )
    )  # fmt: skip

    chunks = await stream(claude, {**HI, "tools": [WEATHER]})

    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            for call in choice["delta"].get("tool_calls", []):
                slot = calls.setdefault(call["index"], {"arguments": ""})
                if "id" in call:
                    slot.update(id=call["id"], name=call["function"]["name"])
                slot["arguments"] += call["function"]["arguments"]
    assert [(i, c["id"], c["name"]) for i, c in sorted(calls.items())] == [
        (0, "toolu_a", "get_weather"),
        (1, "toolu_b", "get_weather"),
    ]
    assert orjson.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert orjson.loads(calls[1]["arguments"]) == {"city": "Rome"}
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] == 40


async def test_stream_error_event_is_a_retryable_provider_error(
    claude: AnthropicProvider, upstream: FakeUpstream
) -> None:
    upstream.sse(
        events(
            start(),
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        )
    )
    received = []
    with pytest.raises(ProviderError) as info:
        async for chunk in claude.stream_chat(HI, MODEL, later()):
            received.append(chunk)
    assert len(received) == 1  # the role chunk came before the failure
    assert info.value.retryable and info.value.upstream_status == 529
    assert "Overloaded" in info.value.message


@pytest.mark.parametrize(
    "frames",
    [
        [sse_frame(start(), event="message_start"), sse_frame(text_delta(0, "cut"))],
        [sse_frame(start()), b"data: {not json\n\n"],
    ],
)
async def test_truncated_or_garbled_stream_is_retryable(
    claude: AnthropicProvider, upstream: FakeUpstream, frames: list[bytes]
) -> None:
    upstream.sse(frames)
    with pytest.raises(ProviderError) as info:
        await stream(claude, HI)
    assert info.value.retryable


# -- errors and configuration -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (529, "overloaded_error", True),
        (500, "api_error", True),
        (429, "rate_limit_error", True),
        (400, "invalid_request_error", False),
        (403, "permission_error", False),
    ],
)
async def test_http_errors_keep_anthropic_message_and_retry_semantics(
    claude: AnthropicProvider, upstream: FakeUpstream, status: int, kind: str, retryable: bool
) -> None:
    body = {"type": "error", "error": {"type": kind, "message": f"the {kind} text"}}
    upstream.json(body, status=status, headers={"retry-after": "3"})
    with pytest.raises(ProviderError) as info:
        await claude.chat(HI, MODEL, later())
    assert info.value.retryable is retryable
    assert info.value.upstream_status == status
    assert f"the {kind} text" in info.value.message
    assert info.value.retry_after == 3
    if not retryable:
        assert info.value.status == status


async def test_stream_http_error_before_first_event(
    claude: AnthropicProvider, upstream: FakeUpstream
) -> None:
    upstream.json({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, 529)
    with pytest.raises(ProviderError) as info:
        await stream(claude, HI)
    assert info.value.retryable and "busy" in info.value.message


async def test_wrong_key_is_an_authentication_error(upstream: FakeUpstream) -> None:
    config = AnthropicConfig(type="anthropic", base_url=upstream.url + "/v1/", api_key=Secret("x"))
    provider = AnthropicProvider("claude", config)
    await provider.start()
    try:
        with pytest.raises(ProviderError) as info:
            await provider.chat(HI, MODEL, later())
    finally:
        await provider.aclose()
    assert upstream.last.path == "/v1/messages"  # a base_url ending in /v1 is accepted
    assert info.value.status == 401 and not info.value.retryable


async def test_malformed_success_body_is_retryable(
    claude: AnthropicProvider, upstream: FakeUpstream
) -> None:
    upstream.raw(b"<html>oops</html>", content_type="text/html")
    with pytest.raises(ProviderError) as info:
        await claude.chat(HI, MODEL, later())
    assert info.value.retryable


async def test_embeddings_are_refused_clearly(claude: AnthropicProvider) -> None:
    with pytest.raises(InvalidRequestError, match="embeddings"):
        await claude.embed({"input": "x"}, MODEL, later())


def test_config_as_written_in_the_issue() -> None:
    raw = {
        "providers": {"claude": {"type": "anthropic", "api_key": "env:ANTHROPIC_API_KEY"}},
        "models": {"c": {"targets": [{"provider": "claude", "model": MODEL}]}},
    }
    settings = parse_settings(raw, env={"ANTHROPIC_API_KEY": "sk-ant-secret-value"})
    config = settings.provider_configs["claude"]
    assert isinstance(config, AnthropicConfig)
    assert config.base_url == "https://api.anthropic.com"
    assert config.default_max_tokens == 4096
    assert "sk-ant-secret-value" not in repr(config)
    assert provider_class("anthropic") is AnthropicProvider

    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        parse_settings(raw, env={})
    with pytest.raises(ConfigError, match="api_key"):
        parse_settings({"providers": {"claude": {"type": "anthropic"}}}, env={})
