"""The official `openai` client's Responses API works unchanged against the gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.gateway import ThreadedGateway, failover_config, running_gateway
from tests.support.ledger import usage_rows

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(store_url: str, tmp_path: Path) -> Iterator[ThreadedGateway]:
    config = failover_config(store_url, tmp_path)
    with running_gateway(config) as gw:
        yield gw


def client(gw: ThreadedGateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def test_create_with_instructions_through_fallback(gateway: ThreadedGateway) -> None:
    c = client(gateway, gateway.create_key())
    raw = c.responses.with_raw_response.create(
        model="chat", instructions="Be brief.", input="the quick brown fox", max_output_tokens=64
    )
    response = raw.parse()  # the SDK validated the whole object
    assert response.status == "completed" and response.id.startswith("resp_")
    assert response.output_text.endswith("the quick brown fox")  # chaos echoes the prompt
    assert response.instructions == "Be brief."
    assert response.usage is not None and response.usage.output_tokens > 0
    assert raw.headers["x-pilothouse-attempts"] == "2"
    assert raw.headers["x-pilothouse-target"] == "chaos/gpt-4o-mini"


def test_stored_response_can_be_read_continued_and_deleted(gateway: ThreadedGateway) -> None:
    c = client(gateway, gateway.create_key())
    first = c.responses.create(model="chat", input="alpha beta")
    assert c.responses.retrieve(first.id).output_text == first.output_text

    follow = c.responses.create(model="chat", input="gamma", previous_response_id=first.id)
    lone = c.responses.create(model="chat", input="gamma", store=False)
    assert follow.output_text == "gamma"  # chaos echoes the last user message
    # chaos counts every message it receives: the earlier user and assistant turns reached it
    assert first.usage is not None and follow.usage is not None and lone.usage is not None
    assert follow.usage.input_tokens == 2 * first.usage.input_tokens + lone.usage.input_tokens
    assert follow.previous_response_id == first.id

    c.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.create(model="chat", input="x", previous_response_id=first.id)


def test_store_false_keeps_nothing_and_keys_cannot_read_each_other(
    gateway: ThreadedGateway,
) -> None:
    alice = client(gateway, gateway.create_key())
    bob = client(gateway, gateway.create_key())
    private = alice.responses.create(model="chat", input="secret plan", store=False)
    with pytest.raises(openai.NotFoundError):
        alice.responses.retrieve(private.id)

    stored = alice.responses.create(model="chat", input="alice's thread")
    with pytest.raises(openai.NotFoundError):
        bob.responses.retrieve(stored.id)
    with pytest.raises(openai.NotFoundError):
        bob.responses.create(model="chat", input="x", previous_response_id=stored.id)
    with pytest.raises(openai.NotFoundError):
        bob.responses.delete(stored.id)
    assert alice.responses.retrieve(stored.id).id == stored.id


def test_stream_events_and_final_response(gateway: ThreadedGateway) -> None:
    c = client(gateway, gateway.create_key())
    with c.responses.stream(model="chat", input="the quick brown fox") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in kinds and kinds[-1] == "response.completed"
    assert final.output_text.endswith("the quick brown fox")
    assert final.usage is not None and final.usage.output_tokens == 4
    assert c.responses.retrieve(final.id).output_text == final.output_text


def test_cached_stream_replays_as_response_events(gateway: ThreadedGateway) -> None:
    c = client(gateway, gateway.create_key())
    c.responses.create(model="cached", input="the quick brown fox")
    raw = c.responses.with_raw_response.create(
        model="cached", input="the quick brown fox", stream=True
    )
    assert raw.headers["x-pilothouse-cache"] == "hit"
    events = list(raw.parse())
    assert events[-1].type == "response.completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "the quick brown fox"


def test_function_tools_are_translated_and_results_accepted(gateway: ThreadedGateway) -> None:
    c = client(gateway, gateway.create_key())
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    response = c.responses.create(
        model="chat",
        tools=[tool],  # type: ignore[list-item]
        input=[
            {"role": "user", "content": "weather in Oslo?"},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city": "Oslo"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        ],
    )
    lone = c.responses.create(model="chat", input="weather in Oslo?")
    assert response.status == "completed" and response.output_text == "weather in Oslo?"
    assert response.usage is not None and lone.usage is not None
    # the call and its output travelled as two more messages (3 + words each, as chaos counts)
    assert response.usage.input_tokens == lone.usage.input_tokens + 3 + 3 + 1


def test_bad_requests_are_precise_400s_and_every_call_is_recorded(
    gateway: ThreadedGateway,
) -> None:
    key = gateway.create_key()
    headers = {"Authorization": f"Bearer {key}"}
    cases = [
        ({"model": "chat"}, "input"),
        ({"model": "chat", "input": [{"type": "reasoning"}]}, "input[0].type"),
        ({"model": "chat", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"model": "chat", "input": "x", "store": "yes"}, "store"),
        ({"model": "chat", "input": "x", "text": {"format": {"type": "xml"}}}, "text.format"),
    ]
    for body, param in cases:
        resp = httpx.post(gateway.url + "/v1/responses", json=body, headers=headers)
        assert resp.status_code == 400, body
        assert resp.json()["error"]["param"] == param
    client(gateway, key).responses.create(model="chat", input="fine")
    rows = usage_rows(gateway)
    responses_rows = [r for r in rows if r["endpoint"] == "responses"]
    assert len(responses_rows) == len(cases) + 1
    assert sorted(r["status"] for r in responses_rows) == [200] + [400] * len(cases)
