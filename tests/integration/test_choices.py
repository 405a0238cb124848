"""``n > 1``: native pass-through where the upstream takes ``n``, fan-out elsewhere."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.chaos_upstream import chaos_upstream
from tests.support.gateway import base_config, running_gateway
from tests.support.ledger import usage_rows

pytestmark = pytest.mark.integration
MESSAGES = [{"role": "user", "content": "one two three four"}]


def client(gw: Any, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def gateway(tmp_path: Path, providers: dict[str, Any] | None = None) -> Any:
    extra: dict[str, Any] = {}
    if providers is not None:
        extra["providers"] = providers
        extra["models"] = {
            name: {"targets": [{"provider": name, "model": "gpt-4o-mini"}]} for name in providers
        }
    return running_gateway(base_config(f"sqlite:///{tmp_path}/ph.db", tmp_path, **extra))


def test_fan_out_gives_n_choices_and_bills_every_call(tmp_path: Path) -> None:
    with gateway(tmp_path) as gw:
        api = client(gw, gw.create_key())
        one = api.chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)
        three = api.chat.completions.with_raw_response.create(model="chat", messages=MESSAGES, n=3)
        single, triple = one.parse(), three.parse()
        assert [c.index for c in triple.choices] == [0, 1, 2]
        assert all(c.message.content for c in triple.choices)
        assert single.usage is not None and triple.usage is not None
        # Each of the three calls paid for the prompt and its own answer.
        assert triple.usage.prompt_tokens == 3 * single.usage.prompt_tokens
        assert triple.usage.completion_tokens == 3 * single.usage.completion_tokens
        cost_one = Decimal(one.headers["x-pilothouse-cost-usd"])
        assert Decimal(three.headers["x-pilothouse-cost-usd"]) == 3 * cost_one
        [row] = usage_rows(gw, request_id=three.headers["x-request-id"])
        assert row["input_tokens"] == triple.usage.prompt_tokens
        assert row["output_tokens"] == triple.usage.completion_tokens
        [first] = usage_rows(gw, request_id=one.headers["x-request-id"])
        assert row["cost_pico"] == 3 * first["cost_pico"]
        assert gw.runtime.providers["chaos"].calls == 4


def test_an_upstream_that_takes_n_gets_one_call(tmp_path: Path) -> None:
    with chaos_upstream() as url:
        providers = {
            "native": {"type": "openai", "base_url": url, "api_key": "env:HOME"},
            "ollama_like": {
                "type": "openai",
                "base_url": url,
                "api_key": "env:HOME",
                "supports_n": False,
            },
        }
        with gateway(tmp_path, providers) as gw:
            api = client(gw, gw.create_key())
            single = api.chat.completions.create(model="native", messages=MESSAGES)
            native = api.chat.completions.create(model="native", messages=MESSAGES, n=2)
            fanned = api.chat.completions.create(model="ollama_like", messages=MESSAGES, n=2)
    assert single.usage and native.usage and fanned.usage
    assert len(native.choices) == len(fanned.choices) == 2
    # One upstream call pays the prompt once; a fan-out pays it per choice.
    assert native.usage.prompt_tokens == single.usage.prompt_tokens
    assert fanned.usage.prompt_tokens == 2 * single.usage.prompt_tokens


def test_the_budget_reserves_for_every_choice(tmp_path: Path) -> None:
    with gateway(tmp_path) as gw:
        api = client(gw, gw.create_key(budget_usd="0.01"))
        ok = api.chat.completions.create(model="chat", messages=MESSAGES, max_tokens=1000)
        assert ok.choices
        # 128 answers of up to 1,000 tokens could cost about $0.08: more than is left.
        with pytest.raises(openai.APIStatusError) as refused:
            api.chat.completions.create(model="chat", messages=MESSAGES, max_tokens=1000, n=128)
        assert refused.value.status_code == 429
        assert "budget exhausted" in refused.value.message


def streamed(api: openai.OpenAI, alias: str, n: int) -> tuple[dict[int, str], dict[int, str], Any]:
    texts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    usage = None
    ids = set()
    for chunk in api.chat.completions.create(
        model=alias,
        messages=MESSAGES,
        n=n,
        stream=True,
        stream_options={"include_usage": True},
    ):
        ids.add(chunk.id)
        usage = chunk.usage or usage
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert len(ids) == 1  # one completion, whatever served it
    return texts, finishes, usage


def test_streamed_fan_out_interleaves_choices_and_sums_usage(tmp_path: Path) -> None:
    with gateway(tmp_path) as gw:
        api = client(gw, gw.create_key())
        one, _, single = streamed(api, "chat", 1)
        texts, finishes, usage = streamed(api, "chat", 3)
        assert texts == {0: one[0], 1: one[0], 2: one[0]}  # the chaos upstream echoes
        assert finishes == {0: "stop", 1: "stop", 2: "stop"}
        assert usage.prompt_tokens == 3 * single.prompt_tokens
        assert usage.completion_tokens == 3 * single.completion_tokens
        rows = usage_rows(gw)
        assert rows[-1]["output_tokens"] == usage.completion_tokens and rows[-1]["stream"]


def test_streamed_native_n_keeps_choices_apart(tmp_path: Path) -> None:
    with chaos_upstream() as url:
        providers = {"native": {"type": "openai", "base_url": url, "api_key": "env:HOME"}}
        with gateway(tmp_path, providers) as gw:
            api = client(gw, gw.create_key())
            texts, finishes, _usage = streamed(api, "native", 2)
    assert set(texts) == {0, 1} and texts[0] == texts[1] == "one two three four"
    assert finishes == {0: "stop", 1: "stop"}


@pytest.mark.parametrize("n", [0, 129, "2", 2.5, True])
def test_a_bad_n_is_a_precise_400(tmp_path: Path, n: Any) -> None:
    with gateway(tmp_path) as gw:
        key = gw.create_key()
        body: dict[str, Any] = {"model": "chat", "messages": MESSAGES, "n": n}
        resp = httpx.post(
            gw.url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
        )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "n"


def test_a_cached_multi_choice_answer_replays_every_choice(tmp_path: Path) -> None:
    models = {
        "chat": {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}], "cache": {"ttl_s": 60}}
    }
    config = base_config(f"sqlite:///{tmp_path}/ph.db", tmp_path, models=models)
    with running_gateway(config) as gw:
        api = client(gw, gw.create_key())
        first, _, _ = streamed(api, "chat", 2)
        again = api.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES, n=2, stream=True
        )
        assert again.headers.get("x-pilothouse-cache") == "hit"
        texts: dict[int, str] = {}
        for chunk in again.parse():
            for choice in chunk.choices:
                texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
        assert texts == first and len(texts) == 2
        assert gw.runtime.providers["chaos"].calls == 2  # the replay called nobody
