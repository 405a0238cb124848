"""``/v1/responses`` goes natively to an upstream with the Responses API (``supports_responses``).

The upstream is a real HTTP chaos server speaking the Responses wire format; a
middleware records what reached it, so the tests see the native call, the
fields only the Responses API knows, and that the gateway (not the upstream)
keeps the conversation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import openai
import orjson
import pytest
from aiohttp import web

from pilothouse.chaos.plan import ChaosConfig
from pilothouse.chaos.server import build_chaos_app
from tests.support.aiohttp_thread import serve_in_thread
from tests.support.gateway import ThreadedGateway, base_config, running_gateway
from tests.support.ledger import usage_rows

pytestmark = pytest.mark.integration
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
def seen() -> list[tuple[str, dict[str, Any]]]:
    return []


@pytest.fixture
def gateway(tmp_path: Path, seen: list[tuple[str, dict[str, Any]]]) -> Iterator[ThreadedGateway]:
    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        seen.append((request.path, orjson.loads(await request.read())))
        return await handler(request)

    app = build_chaos_app(msgspec.convert({"type": "chaos", "reply": "echo"}, ChaosConfig))
    app.middlewares.append(record)
    with serve_in_thread(app) as url:
        native = {"type": "openai", "base_url": url + "/v1", "api_key": "env:HOME"}
        providers = {
            "native": {**native, "supports_responses": True},
            "chat_only": native,
            "down": {"type": "chaos", "error_rate": 1.0, "error_status": 503},
        }
        models = {
            "native": {
                "targets": [
                    {"provider": "down", "model": "gpt-4o-mini"},
                    {"provider": "native", "model": "gpt-5-mini"},
                ]
            },
            "chat_only": {"targets": [{"provider": "chat_only", "model": "gpt-4o-mini"}]},
            "native_cached": {
                "targets": [{"provider": "native", "model": "gpt-5-mini"}],
                "cache": {"ttl_s": 60},
            },
        }
        config = base_config(
            f"sqlite:///{tmp_path}/ph.db", tmp_path, providers=providers, models=models
        )
        with running_gateway(config) as gw:
            yield gw


def client(gw: ThreadedGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.create_key(), max_retries=0)


def test_native_target_gets_the_responses_call_with_its_own_fields(
    gateway: ThreadedGateway, seen: list[tuple[str, dict[str, Any]]]
) -> None:
    api = client(gateway)
    raw = api.responses.with_raw_response.create(
        model="native",
        instructions="Be brief.",
        input="the quick brown fox",
        reasoning={"effort": "low"},
        max_output_tokens=64,
    )
    done = raw.parse()
    assert raw.headers["x-pilothouse-target"] == "native/gpt-5-mini"  # after the fallback
    assert done.status == "completed" and done.output_text.endswith("the quick brown fox")
    assert done.id.startswith("resp_") and "chaos" not in done.id  # the gateway's own id
    [(path, body)] = seen
    assert path == "/v1/responses"
    assert body["reasoning"] == {"effort": "low"} and body["max_output_tokens"] == 64
    assert body["store"] is False  # the gateway keeps the conversation, not the upstream
    assert body["input"][0] == {"type": "message", "role": "system", "content": "Be brief."}
    [row] = usage_rows(gateway, request_id=raw.headers["x-request-id"])
    assert done.usage is not None
    assert row["input_tokens"] == done.usage.input_tokens > 0
    assert row["output_tokens"] == done.usage.output_tokens > 0


def test_previous_response_id_and_tools_on_the_native_path(
    gateway: ThreadedGateway, seen: list[tuple[str, dict[str, Any]]]
) -> None:
    api = client(gateway)
    first = api.responses.create(model="native", input="alpha beta")
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    follow = api.responses.create(
        model="native",
        previous_response_id=first.id,
        tools=[tool],  # type: ignore[list-item]
        input=[
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"role": "user", "content": "gamma"},
        ],
    )
    assert follow.output_text == "gamma" and follow.previous_response_id == first.id
    body = seen[-1][1]
    kinds = [item.get("type") for item in body["input"]]
    assert kinds == ["message", "message", "function_call", "function_call_output", "message"]
    assert body["input"][1] == {"type": "message", "role": "assistant", "content": "alpha beta"}
    assert body["tools"] == [tool] and "previous_response_id" not in body
    assert api.responses.retrieve(follow.id).output_text == "gamma"


def test_native_stream_is_relayed_as_responses_events(
    gateway: ThreadedGateway, seen: list[tuple[str, dict[str, Any]]]
) -> None:
    api = client(gateway)
    with api.responses.stream(model="native", input="the quick brown fox") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert seen[-1][0] == "/v1/responses" and seen[-1][1]["stream"] is True
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert final.output_text == "the quick brown fox"
    assert final.usage is not None and final.usage.output_tokens == 4
    rows = usage_rows(gateway)
    assert rows[-1]["output_tokens"] == 4 and rows[-1]["stream"]


def test_a_provider_without_the_flag_is_translated_to_chat(
    gateway: ThreadedGateway, seen: list[tuple[str, dict[str, Any]]]
) -> None:
    done = client(gateway).responses.create(model="chat_only", input="hello there")
    assert done.output_text == "hello there"
    assert [path for path, _ in seen] == ["/v1/chat/completions"]


def test_the_cache_keys_responses_only_fields(
    gateway: ThreadedGateway, seen: list[tuple[str, dict[str, Any]]]
) -> None:
    """Requests differing only in a field the native upstream sees are different entries."""
    api = client(gateway)

    def ask(effort: str) -> str:
        raw = api.responses.with_raw_response.create(
            model="native_cached", input="the quick brown fox", reasoning={"effort": effort}
        )
        return raw.headers.get("x-pilothouse-cache", "")

    assert ask("low") != "hit"
    assert ask("high") != "hit"  # the same chat request, another reasoning effort
    assert ask("low") == "hit"
    assert [body["reasoning"] for _, body in seen] == [{"effort": "low"}, {"effort": "high"}]
