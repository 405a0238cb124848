"""Bedrock provider against a real local server that checks SigV4 and speaks Converse.

The fake re-derives the SigV4 signature of every request with botocore from the
same credentials and refuses a mismatch (as AWS does), and streams replies in
AWS's binary event-stream framing, encoded here from the published layout
(prelude with CRC, typed headers, payload, message CRC).
"""

from __future__ import annotations

import binascii
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from pilothouse.config.load import parse_settings
from pilothouse.config.schema import Secret
from pilothouse.errors import ConfigError, InvalidRequestError, ProviderError
from pilothouse.providers.base import provider_class
from pilothouse.providers.bedrock import BedrockConfig, BedrockProvider
from tests.unit.providers.fake_upstream import FakeUpstream, Seen

AKID, SECRET, TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-tok"
REGION = "eu-central-1"
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def expected_signature(seen: Seen, base: str) -> str:
    signed = seen.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    headers = {k: v for k, v in seen.headers.items() if k.lower() in signed}
    request = AWSRequest(
        method=seen.method, url=base + seen.path, data=orjson.dumps(seen.body), headers=headers
    )
    request.context["timestamp"] = seen.headers["X-Amz-Date"]
    auth = SigV4Auth(Credentials(AKID, SECRET, TOKEN), "bedrock", REGION)
    canonical = auth.canonical_request(request)
    return str(auth.signature(auth.string_to_sign(request, canonical), request))


def event(event_type: str, payload: dict[str, Any], message_type: str = "event") -> bytes:
    """One AWS event-stream message with string headers."""
    kind = ":exception-type" if message_type == "exception" else ":event-type"
    fields = {kind: event_type, ":message-type": message_type, ":content-type": "application/json"}
    headers = b""
    for name, value in fields.items():
        raw = value.encode()
        headers += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(raw)) + raw
    body = orjson.dumps(payload)
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + headers + body
    return message + struct.pack(">I", binascii.crc32(message))


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    server = await FakeUpstream().start()

    def sigv4(seen: Seen) -> web.StreamResponse | None:
        auth = seen.headers.get("Authorization", "")
        credential = f"Credential={AKID}/{seen.headers.get('X-Amz-Date', '')[:8]}/{REGION}/bedrock/"
        if credential not in auth or seen.headers.get("X-Amz-Security-Token") != TOKEN:
            return web.json_response({"message": "missing or bad credential"}, status=403)
        if auth.rsplit("Signature=", 1)[1] != expected_signature(seen, server.url):
            body = {"message": "The request signature we calculated does not match"}
            return web.json_response(
                body, status=403, headers={"x-amzn-ErrorType": "InvalidSignatureException:"}
            )
        return None

    server.check = sigv4
    yield server
    await server.stop()


@pytest.fixture
async def bedrock(upstream: FakeUpstream) -> AsyncIterator[BedrockProvider]:
    config = BedrockConfig(
        type="bedrock",
        region=REGION,
        endpoint_url=upstream.url,
        access_key_id=Secret(AKID),
        secret_access_key=Secret(SECRET),
        session_token=Secret(TOKEN),
    )
    provider = BedrockProvider("bedrock", config)
    await provider.start()
    yield provider
    await provider.aclose()


def later() -> float:
    return time.monotonic() + 30


def converse(content: list[dict[str, Any]], stop: str = "end_turn", **usage: int) -> Any:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {"inputTokens": 10, "outputTokens": 4, "totalTokens": 14, **usage},
        "metrics": {"latencyMs": 120},
    }


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


async def test_signed_converse_with_system_and_inference_config(
    bedrock: BedrockProvider, upstream: FakeUpstream
) -> None:
    upstream.json(converse([{"text": "Hi there"}], cacheReadInputTokens=6))
    request = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
        ],
        "max_tokens": 64,
        "temperature": 0.1,
        "stop": ["###"],
    }

    result = await bedrock.chat(request, MODEL, later())

    assert upstream.last.path == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    assert upstream.last.body == {
        "messages": [{"role": "user", "content": [{"text": "Hello"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.1, "stopSequences": ["###"]},
    }
    ChatCompletion.model_validate(result.body)
    assert result.body["choices"][0]["message"]["content"] == "Hi there"
    assert (result.usage.input_tokens, result.usage.cached_input_tokens) == (16, 6)
    assert result.usage.output_tokens == 4 and not result.usage.estimated


async def test_tool_use_round_trip(bedrock: BedrockProvider, upstream: FakeUpstream) -> None:
    use = {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Oslo"}}
    upstream.json(converse([{"toolUse": use}], stop="tool_use"))
    request = {
        "messages": [{"role": "user", "content": "Weather in Oslo?"}],
        "tools": [WEATHER],
        "tool_choice": "required",
    }

    result = await bedrock.chat(request, MODEL, later())

    assert upstream.last.body["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "inputSchema": {"json": WEATHER["function"]["parameters"]},  # type: ignore[index]
                }
            }
        ],
        "toolChoice": {"any": {}},
    }
    choice = result.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["id"] == "tooluse_1" and call["function"]["arguments"] == '{"city":"Oslo"}'

    upstream.json(converse([{"text": "Cold."}]))
    await bedrock.chat(
        {
            "messages": [
                *request["messages"],  # type: ignore[list-item]
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "tooluse_1", "content": '{"temp_c": -3}'},
            ],
            "tools": [WEATHER],
        },
        MODEL,
        later(),
    )
    assert upstream.last.body["messages"][2] == {
        "role": "user",
        "content": [
            {"toolResult": {"toolUseId": "tooluse_1", "content": [{"json": {"temp_c": -3}}]}}
        ],
    }


async def test_errors_carry_the_bedrock_kind_and_retry_semantics(
    bedrock: BedrockProvider, upstream: FakeUpstream
) -> None:
    upstream.json(
        {"message": "Too many requests, please wait before trying again."},
        status=429,
        headers={"x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/"},
    )
    with pytest.raises(ProviderError) as caught:
        await bedrock.chat({"messages": [{"role": "user", "content": "x"}]}, MODEL, later())
    assert caught.value.retryable and "ThrottlingException" in caught.value.message

    upstream.json(
        {"message": "Malformed input request"},
        status=400,
        headers={"x-amzn-ErrorType": "ValidationException:"},
    )
    with pytest.raises(ProviderError) as caught:
        await bedrock.chat({"messages": [{"role": "user", "content": "x"}]}, MODEL, later())
    assert not caught.value.retryable and caught.value.status == 400


async def test_converse_stream_in_event_stream_framing(
    bedrock: BedrockProvider, upstream: FakeUpstream
) -> None:
    frames = [
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Let me "}}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "check."}}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event(
            "contentBlockStart",
            {
                "contentBlockIndex": 1,
                "start": {"toolUse": {"toolUseId": "t1", "name": "get_weather"}},
            },
        ),
        event(
            "contentBlockDelta",
            {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"city":'}}},
        ),
        event(
            "contentBlockDelta",
            {"contentBlockIndex": 1, "delta": {"toolUse": {"input": ' "Rome"}'}}},
        ),
        event("messageStop", {"stopReason": "tool_use"}),
        event("metadata", {"usage": {"inputTokens": 20, "outputTokens": 11}, "metrics": {}}),
    ]
    upstream.sse(frames, piece=13)  # frames split across TCP writes

    chunks = [
        c
        async for c in bedrock.stream_chat(
            {"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER]}, MODEL, later()
        )
    ]

    assert upstream.last.path.endswith("%3A0/converse-stream")
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == "Let me check."
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0]["id"] == "t1" and calls[0]["function"]["name"] == "get_weather"
    assert "".join(c["function"]["arguments"] for c in calls) == '{"city": "Rome"}'
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"] == {"prompt_tokens": 20, "completion_tokens": 11, "total_tokens": 31}


async def test_exception_inside_the_stream_is_a_provider_error(
    bedrock: BedrockProvider, upstream: FakeUpstream
) -> None:
    upstream.sse(
        [
            event("messageStart", {"role": "assistant"}),
            event("throttlingException", {"message": "slow down"}, message_type="exception"),
        ]
    )
    with pytest.raises(ProviderError, match="throttlingException") as caught:
        async for _ in bedrock.stream_chat(
            {"messages": [{"role": "user", "content": "hi"}]}, MODEL, later()
        ):
            pass
    assert caught.value.retryable


def test_untranslatable_requests_are_400_naming_the_parameter() -> None:
    from pilothouse.providers.bedrock_translate import to_converse

    url = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    with pytest.raises(InvalidRequestError) as caught:
        to_converse({"messages": [{"role": "user", "content": [url]}]})
    assert caught.value.param == "messages[0].content"
    with pytest.raises(InvalidRequestError) as caught:
        to_converse({"messages": [{"role": "user", "content": "x"}], "n": 2})
    assert caught.value.param == "n"


def test_config_is_strict_about_half_given_keys() -> None:
    assert provider_class("bedrock") is BedrockProvider
    raw = {
        "providers": {
            "b": {
                "type": "bedrock",
                "region": REGION,
                "access_key_id": "env:AWS_KEY",
                "secret_access_key": "env:AWS_SECRET",
            }
        }
    }
    settings = parse_settings(raw, env={"AWS_KEY": AKID, "AWS_SECRET": SECRET})
    assert isinstance(settings.provider_configs["b"], BedrockConfig)
    half = {"providers": {"b": {"type": "bedrock", "region": REGION, "access_key_id": "env:K"}}}
    with pytest.raises(ConfigError, match="both access_key_id and secret_access_key"):
        parse_settings(half, env={"K": AKID})


async def test_credentials_from_the_standard_chain(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AKID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    upstream.json(converse([{"text": "ok"}]))
    provider = BedrockProvider(
        "b", BedrockConfig(type="bedrock", region=REGION, endpoint_url=upstream.url)
    )
    await provider.start()
    try:
        result = await provider.chat(
            {"messages": [{"role": "user", "content": "x"}]}, MODEL, later()
        )
    finally:
        await provider.aclose()
    assert result.body["choices"][0]["message"]["content"] == "ok"  # the fake checked the signature


async def test_a_wrong_secret_fails_the_signature_check(upstream: FakeUpstream) -> None:
    config = BedrockConfig(
        type="bedrock",
        region=REGION,
        endpoint_url=upstream.url,
        access_key_id=Secret(AKID),
        secret_access_key=Secret(SECRET + "x"),
        session_token=Secret(TOKEN),
    )
    provider = BedrockProvider("b", config)
    await provider.start()
    try:
        with pytest.raises(ProviderError, match="InvalidSignatureException") as caught:
            await provider.chat({"messages": [{"role": "user", "content": "x"}]}, MODEL, later())
    finally:
        await provider.aclose()
    assert caught.value.status == 403 and SECRET not in caught.value.message
