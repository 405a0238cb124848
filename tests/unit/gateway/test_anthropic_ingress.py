"""Anthropic Messages ⇄ OpenAI chat translation at the ingress (pure, no sockets)."""

from __future__ import annotations

import orjson
import pytest
from anthropic.types import Message

from pilothouse.errors import InvalidRequestError
from pilothouse.gateway.anthropic_ingress import EventEncoder, to_chat, to_message
from pilothouse.gateway.routes_anthropic import translate_frames
from pilothouse.providers.base import Usage


def test_request_with_tools_images_and_results() -> None:
    body = {
        "model": "chat",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
        "stop_sequences": ["END"],
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "u1"},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                 "data": "AAA"}},
                ],
            },
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f",
                                               "input": {"x": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                          "content": [{"type": "text", "text": "42"}]},
                                         {"type": "text", "text": "and?"}]},
        ],
    }  # fmt: skip

    chat = to_chat(body)

    assert chat["messages"] == [
        {"role": "system", "content": "A\n\nB"},
        {"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "42"},
        {"role": "user", "content": [{"type": "text", "text": "and?"}]},
    ]  # fmt: skip
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    assert chat["stop"] == ["END"] and chat["user"] == "u1" and chat["max_tokens"] == 100


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": 1, "messages": []}, "messages"),
        ({"model": "m", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]},
         "messages[0].role"),
        ({"model": "m", "max_tokens": 1, "system": 5,
          "messages": [{"role": "user", "content": "x"}]}, "system"),
        ({"model": "m", "max_tokens": 1,
          "messages": [{"role": "user", "content": [{"type": "document"}]}]},
         "messages[0].content[0]"),
    ],
)  # fmt: skip
def test_bad_bodies_name_the_field(body: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        to_chat(body)
    assert caught.value.param == param


def test_completion_becomes_a_valid_message_with_cache_split_usage() -> None:
    completion = {
        "model": "gpt-4o-mini",
        "choices": [{"message": {"content": "hi", "tool_calls": [
            {"id": "c1", "function": {"name": "f", "arguments": '{"a": 2}'}}]},
            "finish_reason": "tool_calls"}],
    }  # fmt: skip
    message = to_message(completion, Usage(30, 5, 10), "msg_1")
    Message.model_validate(message)
    assert message["stop_reason"] == "tool_use"
    assert message["content"][1] == {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 2}}
    assert (
        message["usage"]["input_tokens"] == 20 and message["usage"]["cache_read_input_tokens"] == 10
    )


def frames(*chunks: object) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def test_stream_with_text_then_two_tool_calls() -> None:
    def chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
        return {"model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    data = frames(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Checking"}),
        chunk(
            {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}}]}
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"x":'}}]}),
        chunk(
            {"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}}]}
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk({}, "tool_calls"),
        {"model": "m", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}},
    )
    # Split mid-frame, as TCP writes may be.
    encoder = EventEncoder("msg_1", "m")
    first, rest = translate_frames(data[:57], encoder)
    second, tail = translate_frames(rest + data[57:], encoder)
    assert tail == b""
    events = [orjson.loads(e.split(b"data: ", 1)[1]) for e in first + second]

    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert [b["type"] for b in starts] == ["text", "tool_use", "tool_use"]
    json_parts: dict[int, str] = {}
    for e in events:
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta":
            json_parts[e["index"]] = json_parts.get(e["index"], "") + e["delta"]["partial_json"]
    assert json_parts == {1: '{"x":1}', 2: "{}"}  # the late fragment still lands on call a
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert events[-2]["usage"]["output_tokens"] == 3 and events[-2]["usage"]["input_tokens"] == 9


def test_mid_stream_gateway_error_becomes_an_anthropic_error_event() -> None:
    data = (
        b'data: {"error": {"message": "upstream failed mid-stream", "type": "upstream_error"}}\n\n'
    )
    out, _ = translate_frames(b": keep-alive\n\n" + data, EventEncoder("msg_1", "m"))
    assert out[0] == b": keep-alive\n\n"
    assert out[1].startswith(b"event: error\n")
    assert orjson.loads(out[1].split(b"data: ", 1)[1])["error"]["type"] == "api_error"
