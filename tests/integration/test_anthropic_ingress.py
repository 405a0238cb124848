"""The official `anthropic` client works against the gateway's /v1/messages, errors included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from tests.support.gateway import ThreadedGateway, failover_config, running_gateway
from tests.support.ledger import usage_rows

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(store_url: str, tmp_path: Path) -> Iterator[ThreadedGateway]:
    config = failover_config(
        store_url,
        tmp_path,
        models={"broken": {"targets": [{"provider": "down", "model": "m"}]}},
        server={"max_body_bytes": 10_000},
    )
    with running_gateway(config) as gw:
        yield gw


def claude(gw: ThreadedGateway, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)


MESSAGES: list[anthropic.types.MessageParam] = [{"role": "user", "content": "the quick brown fox"}]


def test_message_round_trip_through_fallback(gateway: ThreadedGateway) -> None:
    c = claude(gateway, gateway.create_key())
    raw = c.messages.with_raw_response.create(
        model="chat", max_tokens=64, system="Be brief.", messages=MESSAGES
    )
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text.endswith("the quick brown fox")  # chaos echoes the prompt
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0 and message.usage.input_tokens > 0
    assert raw.headers["x-pilothouse-target"] == "chaos/gpt-4o-mini"
    assert raw.headers["x-pilothouse-attempts"] == "2"  # the first target failed, fallback served


def test_stream_events_and_usage(gateway: ThreadedGateway) -> None:
    c = claude(gateway, gateway.create_key())
    with c.messages.stream(model="chat", max_tokens=64, messages=MESSAGES) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "content_block_stop" in kinds
    assert final.content[0].type == "text" and final.content[0].text.endswith("brown fox")
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 4


def test_every_request_leaves_one_usage_row(gateway: ThreadedGateway) -> None:
    c = claude(gateway, gateway.create_key())
    c.messages.create(model="chat", max_tokens=16, messages=MESSAGES)
    with c.messages.stream(model="chat", max_tokens=16, messages=MESSAGES) as stream:
        stream.until_done()
    with pytest.raises(anthropic.BadRequestError):
        c.messages.create(model="chat", max_tokens=0, messages=MESSAGES)
    rows = usage_rows(gateway)
    assert sorted((r["stream"], r["status"]) for r in rows) == [
        (False, 200),
        (False, 400),
        (True, 200),
    ]


def test_cache_hit_replays_as_anthropic_events(gateway: ThreadedGateway) -> None:
    c = claude(gateway, gateway.create_key())
    c.messages.create(model="cached", max_tokens=16, messages=MESSAGES)
    raw = c.messages.with_raw_response.create(
        model="cached", max_tokens=16, messages=MESSAGES, stream=True
    )
    assert raw.headers["x-pilothouse-cache"] == "hit"
    events = list(raw.parse())
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    texts = [
        e.delta.text
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    ]
    assert "".join(texts) == "the quick brown fox"


def test_errors_are_the_sdks_own_classes(gateway: ThreadedGateway) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        claude(gateway, "ph-wrong").messages.create(model="chat", max_tokens=8, messages=MESSAGES)
    c = claude(gateway, gateway.create_key(models=["chat"]))
    with pytest.raises(anthropic.PermissionDeniedError):
        c.messages.create(model="cached", max_tokens=8, messages=MESSAGES)
    with pytest.raises(anthropic.NotFoundError):
        c.messages.create(model="nosuch", max_tokens=8, messages=MESSAGES)
    with pytest.raises(anthropic.BadRequestError) as bad:
        c.messages.create(model="chat", max_tokens=8, messages=[{"role": "tool", "content": "x"}])  # type: ignore[typeddict-item]
    assert "messages[0].role" in bad.value.message
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(anthropic.InternalServerError):
        claude(gateway, gateway.create_key()).messages.create(
            model="broken", max_tokens=8, messages=MESSAGES
        )


def test_count_tokens(gateway: ThreadedGateway) -> None:
    c = claude(gateway, gateway.create_key())
    small = c.messages.count_tokens(model="chat", messages=MESSAGES)
    big = c.messages.count_tokens(
        model="chat", messages=[{"role": "user", "content": "the quick brown fox " * 50}]
    )
    assert 0 < small.input_tokens < big.input_tokens
    with pytest.raises(anthropic.NotFoundError):
        c.messages.count_tokens(model="nosuch", messages=MESSAGES)
