"""The llamacpp provider against the real bundled SmolLM2-135M GGUF.

The model is loaded once per module. Each test runs on its own event loop; the
provider allows that because every job captures the loop that submitted it.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from pilothouse.errors import ConfigError, InvalidRequestError, ProviderError
from pilothouse.providers.base import provider_class
from pilothouse.providers.llamacpp import (
    LlamaCppConfig,
    LlamaCppProvider,
    llama_kwargs,
    resolve_model_path,
)
from pilothouse.providers.llamacpp_worker import END, Job

pytestmark = pytest.mark.integration

MAX_QUEUE = 2
# SmolLM2's end-of-generation tokens (<|endoftext|>, <|im_end|>, <|im_start|>): banning
# them forces a long generation, so a test can tell "stopped early" from "finished".
NO_EOG = {"0": -100, "2": -100, "4": -100}
HELLO = {"messages": [{"role": "user", "content": "Say hello."}], "temperature": 0}


@pytest.fixture(scope="module")
def provider() -> Iterator[LlamaCppProvider]:
    try:
        resolve_model_path("default")
    except ConfigError as exc:
        if os.environ.get("PILOTHOUSE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"bundled model missing: {exc.message}")
        pytest.skip(f"bundled model missing: {exc.message}")
    config = LlamaCppConfig(type="llamacpp", max_queue=MAX_QUEUE, seed=7)
    prov = LlamaCppProvider("local", config)
    asyncio.run(prov.start())
    yield prov
    asyncio.run(prov.aclose())


def later(seconds: float = 120) -> float:
    return time.monotonic() + seconds


async def collect(prov: LlamaCppProvider, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Collect a stream, checking each chunk is one the official openai client accepts."""
    chunks = [chunk async for chunk in prov.stream_chat(request, "smollm2-135m", later())]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    return chunks


def streamed_text(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


async def yield_until(condition: Callable[[], bool]) -> None:
    """Let other tasks run (no timed sleep) until ``condition`` holds."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


async def test_chat_returns_text_and_exact_usage(provider: LlamaCppProvider) -> None:
    result = await provider.chat({**HELLO, "max_tokens": 5}, "smollm2-135m", later())

    ChatCompletion.model_validate(result.body)
    choice = result.body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].strip()
    assert choice["finish_reason"] == "length"
    assert result.body["model"] == "smollm2-135m"
    assert result.usage.input_tokens > 0
    assert result.usage.output_tokens == 5
    assert result.usage.estimated is False
    assert result.body["usage"]["completion_tokens"] == 5


async def test_stream_has_role_content_finish_and_usage(provider: LlamaCppProvider) -> None:
    chunks = await collect(provider, {**HELLO, "max_tokens": 6})

    assert chunks[0]["choices"][0]["delta"].get("role") == "assistant"
    assert len({(c["id"], c["created"], c["model"]) for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    content = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert 1 <= len(content) <= 6
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 6
    assert chunks[-1]["usage"]["prompt_tokens"] > 0


async def test_streamed_usage_matches_llama_cpp_own_count(provider: LlamaCppProvider) -> None:
    """Both kinds of call report llama.cpp's own count, taken from the same engine stream.

    The two answers' text may differ (llama.cpp does not promise bit-identical
    output across calls: batching and prompt-cache reuse change the float path),
    so this checks the accounting, not the words.
    """
    request = {"messages": [{"role": "user", "content": "Name three colours."}], "temperature": 0}
    whole = await provider.chat({**request, "max_tokens": 40}, "m", later())
    chunks = await collect(provider, {**request, "max_tokens": 40})

    usage, own = chunks[-1]["usage"], whole.body["usage"]
    assert usage["prompt_tokens"] == own["prompt_tokens"]  # same prompt, same tokens
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    content = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(content) <= usage["completion_tokens"] <= 40  # every piece is >= 1 token
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1]
    for reason, counted in ((finish, usage), (whole.body["choices"][0]["finish_reason"], own)):
        assert reason in ("stop", "length")
        if reason == "length":
            assert counted["completion_tokens"] == 40


async def test_forced_length_is_counted_identically_streamed_or_not(
    provider: LlamaCppProvider,
) -> None:
    """With end-of-generation banned, both calls must make exactly max_tokens tokens."""
    request = {**HELLO, "max_tokens": 12, "logit_bias": NO_EOG}
    whole = await provider.chat(request, "m", later())
    chunks = await collect(provider, request)

    streamed = chunks[-1]["usage"]
    assert whole.body["usage"] == streamed
    assert streamed["completion_tokens"] == 12 and whole.usage.output_tokens == 12
    assert whole.body["choices"][0]["finish_reason"] == "length"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"


async def test_deadline_during_generation_stops_the_model_thread(
    provider: LlamaCppProvider,
) -> None:
    before = provider.stats.tokens_generated
    request = {**HELLO, "max_tokens": 1500, "logit_bias": NO_EOG}
    with pytest.raises(ProviderError) as info:
        await provider.chat(request, "m", time.monotonic() + 1.0)
    assert info.value.timeout
    # The worker is free again (the next call is served), having stopped well short of 1500.
    after = await provider.chat({**HELLO, "max_tokens": 2}, "m", later())
    assert after.usage.output_tokens == 2
    assert provider.stats.tokens_generated - before - 2 < 1500


async def test_unusable_json_schema_is_a_client_error(provider: LlamaCppProvider) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "frob"}}}
    with pytest.raises(InvalidRequestError, match="frob"):
        await provider.chat({**HELLO, "response_format": fmt, "max_tokens": 5}, "m", later())
    ok = await provider.chat({**HELLO, "max_tokens": 1}, "m", later())
    assert ok.usage.output_tokens == 1


async def test_longer_prompt_counts_more_input_tokens(provider: LlamaCppProvider) -> None:
    short = await provider.chat({**HELLO, "max_tokens": 1}, "m", later())
    longer = {"messages": [{"role": "user", "content": "Say hello." * 10}], "max_tokens": 1}
    long = await provider.chat(longer, "m", later())
    assert long.usage.input_tokens >= short.usage.input_tokens + 9  # >= 1 token per repeat


async def test_stop_sequence_ends_with_stop(provider: LlamaCppProvider) -> None:
    probe = await provider.chat({**HELLO, "max_tokens": 20}, "m", later())
    text = probe.body["choices"][0]["message"]["content"]
    word = text.split()[1]

    result = await provider.chat({**HELLO, "max_tokens": 20, "stop": [word]}, "m", later())

    assert result.body["choices"][0]["finish_reason"] == "stop"
    assert word not in result.body["choices"][0]["message"]["content"]
    chunks = await collect(provider, {**HELLO, "max_tokens": 20, "stop": word})
    assert word not in streamed_text(chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"


async def test_json_schema_response_format_gives_matching_json(
    provider: LlamaCppProvider,
) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 12}},
        "required": ["name"],
        "additionalProperties": False,
    }
    request = {
        "messages": [{"role": "user", "content": "Invent a name for a cat."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
        "max_tokens": 60,
        "temperature": 0,
    }
    result = await provider.chat(request, "m", later())
    parsed = orjson.loads(result.body["choices"][0]["message"]["content"])
    assert set(parsed) == {"name"} and isinstance(parsed["name"], str)


async def test_json_object_response_format_starts_a_json_object(
    provider: LlamaCppProvider,
) -> None:
    request = {
        "messages": [{"role": "user", "content": "Say hello."}],
        "response_format": {"type": "json_object"},
        "max_tokens": 3,
        "temperature": 0,
    }
    result = await provider.chat(request, "m", later())
    assert result.body["choices"][0]["message"]["content"].lstrip().startswith("{")


async def test_cancelled_stream_stops_generation(provider: LlamaCppProvider) -> None:
    before = provider.stats.tokens_generated
    cancelled_before = provider.stats.cancelled
    request = {**HELLO, "max_tokens": 1500, "logit_bias": NO_EOG}
    stream = provider.stream_chat(request, "m", later())
    async for chunk in stream:
        if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            break
    await stream.aclose()  # what the gateway does when the client disconnects

    after_cancel = await provider.chat({**HELLO, "max_tokens": 3}, "m", later())

    assert after_cancel.usage.output_tokens == 3
    assert provider.stats.cancelled == cancelled_before + 1
    generated_by_cancelled = provider.stats.tokens_generated - before - 3
    assert 1 <= generated_by_cancelled < 1500


async def test_expired_deadline_is_a_timeout_and_worker_recovers(
    provider: LlamaCppProvider,
) -> None:
    with pytest.raises(ProviderError) as info:
        await provider.chat({**HELLO, "max_tokens": 50}, "m", time.monotonic())
    assert info.value.timeout and info.value.retryable

    result = await provider.chat({**HELLO, "max_tokens": 2}, "m", later())
    assert result.usage.output_tokens == 2


async def test_full_queue_rejects_at_once_with_retryable_error(
    provider: LlamaCppProvider,
) -> None:
    started, release = threading.Event(), threading.Event()

    def hold(llm: Any, job: Job) -> list[object]:
        started.set()
        release.wait()
        return [END]

    blocker = Job(hold, {}, later(), lambda item: None, asyncio.get_running_loop())
    provider.worker.submit(blocker)
    await asyncio.to_thread(started.wait)  # the model thread is now busy
    waiting = [
        asyncio.create_task(provider.chat({**HELLO, "max_tokens": 2}, "m", later()))
        for _ in range(MAX_QUEUE)
    ]
    await yield_until(lambda: provider.worker.waiting == MAX_QUEUE)
    rejected_before = provider.stats.rejected

    try:
        with pytest.raises(ProviderError) as info:
            await provider.chat({**HELLO, "max_tokens": 2}, "m", later())
        with pytest.raises(ProviderError):
            await collect(provider, {**HELLO, "max_tokens": 2})
    finally:
        release.set()

    assert info.value.retryable and info.value.upstream_status == 503
    assert provider.stats.rejected == rejected_before + 2
    results = await asyncio.gather(*waiting)
    assert [r.usage.output_tokens for r in results] == [2] * MAX_QUEUE


async def test_concurrent_requests_are_served_one_at_a_time(provider: LlamaCppProvider) -> None:
    request = {**HELLO, "max_tokens": 4}
    results = await asyncio.gather(*(provider.chat(request, "m", later()) for _ in range(3)))
    texts = {r.body["choices"][0]["message"]["content"] for r in results}
    assert len(texts) == 1  # temperature 0 on one context: identical answers
    assert all(r.usage.output_tokens == 4 for r in results)


async def test_tools_and_images_are_refused_clearly(provider: LlamaCppProvider) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with pytest.raises(InvalidRequestError, match="tool"):
        await provider.chat({**HELLO, "tools": tools}, "m", later())
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    with pytest.raises(InvalidRequestError, match="text only"):
        await provider.chat({"messages": [{"role": "user", "content": [image]}]}, "m", later())
    with pytest.raises(InvalidRequestError, match="embeddings"):
        await provider.embed({"input": "x"}, "m", later())
    ok = await provider.chat(
        {**HELLO, "tools": tools, "tool_choice": "none", "max_tokens": 1}, "m", later()
    )
    assert ok.usage.output_tokens == 1


async def test_prompt_longer_than_context_is_a_client_error(provider: LlamaCppProvider) -> None:
    huge = {"messages": [{"role": "user", "content": "word " * 5000}]}
    with pytest.raises(InvalidRequestError) as info:
        await provider.chat(huge, "m", later())
    assert info.value.code == "context_length_exceeded"


OBJECT = {"type": "object"}


def test_request_translation() -> None:
    kwargs = llama_kwargs(
        {
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
            ],
            "max_completion_tokens": 9,
            "stop": "END",
            "response_format": {
                "type": "json_schema",
                "json_schema": {"schema": {"type": "object"}},
            },
        },
        default_seed=3,
    )
    assert kwargs["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "a\nb"},
    ]
    assert kwargs["max_tokens"] == 9
    assert kwargs["stop"] == ["END"]
    assert kwargs["seed"] == 3
    assert kwargs["response_format"] == {"type": "json_object", "schema": OBJECT}
    with pytest.raises(InvalidRequestError):
        llama_kwargs({"messages": [{"role": "user", "content": "x"}], "n": 2}, None)
    with pytest.raises(InvalidRequestError):
        llama_kwargs({"messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}, None)


def test_sampling_fields_pass_and_unknown_fields_are_dropped() -> None:
    user = [{"role": "user", "content": "x"}]
    kwargs = llama_kwargs(
        {
            "messages": user,
            "presence_penalty": 0.5,
            "frequency_penalty": 1,
            "top_p": 0.9,
            "logit_bias": {"2": -100, "7": 3},
            "user": "someone",
            "cache_prompt": False,
        },
        default_seed=None,
    )
    assert kwargs["presence_penalty"] == 0.5 and kwargs["frequency_penalty"] == 1.0
    assert kwargs["top_p"] == 0.9
    assert kwargs["logit_bias"] == [[2, -100.0], [7, 3.0]]
    assert "user" not in kwargs and "cache_prompt" not in kwargs and "seed" not in kwargs
    for bad in ({"x": 1}, {"-1": 5}, {"3": "NaN"}, {"3": float("inf")}, ["3"]):
        with pytest.raises(InvalidRequestError, match="logit_bias"):
            llama_kwargs({"messages": user, "logit_bias": bad}, None)


async def test_missing_model_file_is_a_config_error_at_start(tmp_path: Any) -> None:
    missing = str(tmp_path / "nope.gguf")
    prov = LlamaCppProvider("x", LlamaCppConfig(type="llamacpp", model_path=missing))
    with pytest.raises(ConfigError, match=r"nope\.gguf"):
        await prov.start()


async def test_corrupt_model_file_is_a_config_error_at_start(tmp_path: Any) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf")
    prov = LlamaCppProvider("x", LlamaCppConfig(type="llamacpp", model_path=str(bad)))
    with pytest.raises(ConfigError, match="cannot load"):
        await prov.start()


async def test_aclose_fails_waiting_requests_and_stops_the_thread() -> None:
    prov = LlamaCppProvider("closing", LlamaCppConfig(type="llamacpp", max_queue=2))
    await prov.start()
    started, release = threading.Event(), threading.Event()

    def hold(llm: Any, job: Job) -> list[object]:
        started.set()
        release.wait()
        return [END]

    prov.worker.submit(Job(hold, {}, later(), lambda item: None, asyncio.get_running_loop()))
    await asyncio.to_thread(started.wait)
    queued = asyncio.create_task(prov.chat({**HELLO, "max_tokens": 2}, "m", later()))
    await yield_until(lambda: prov.worker.waiting == 1)

    closing = asyncio.create_task(prov.aclose())
    await yield_until(queued.done)
    release.set()
    await closing

    with pytest.raises(ProviderError, match="shutting down"):
        queued.result()
    assert not any(t.name == "llamacpp-closing" for t in threading.enumerate())
    with pytest.raises(ProviderError, match="not running") as info:
        await prov.chat(HELLO, "m", later())
    assert info.value.retryable


def test_registry_and_config_validation() -> None:
    assert provider_class("llamacpp") is LlamaCppProvider
    import msgspec

    with pytest.raises(msgspec.ValidationError, match="max_queue"):
        msgspec.convert({"type": "llamacpp", "max_queue": 0}, LlamaCppConfig)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"type": "llamacpp", "gpu": True}, LlamaCppConfig)
