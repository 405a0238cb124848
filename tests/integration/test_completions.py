"""``/v1/completions``: native endpoints as is, chat translation only when asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.chaos_upstream import chaos_upstream
from tests.support.gateway import base_config, running_gateway
from tests.support.ledger import usage_rows

pytestmark = pytest.mark.integration
PROMPT = "Say this is a test"


def gateway(tmp_path: Path, upstream: str) -> Any:
    providers = {
        "native": {"type": "openai", "base_url": upstream, "api_key": "env:HOME"},
        "chaos": {"type": "chaos", "reply": "echo"},
    }
    models = {
        "instruct": {"targets": [{"provider": "native", "model": "gpt-3.5-turbo-instruct"}]},
        "chat": {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}]},
        "chat-as-text": {
            "targets": [{"provider": "chaos", "model": "gpt-4o-mini"}],
            "completions_from_chat": True,
        },
    }
    config = base_config(
        f"sqlite:///{tmp_path}/ph.db", tmp_path, providers=providers, models=models
    )
    return running_gateway(config)


@pytest.fixture
def gw(tmp_path: Path) -> Any:
    with chaos_upstream(reply="echo") as url, gateway(tmp_path, url) as gw:
        yield gw


def client(gw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.create_key(), max_retries=0)


@pytest.mark.parametrize("alias", ["instruct", "chat-as-text"])
def test_the_openai_client_gets_a_text_completion(gw: Any, alias: str) -> None:
    raw = client(gw).completions.with_raw_response.create(model=alias, prompt=PROMPT, max_tokens=50)
    done = raw.parse()
    assert done.object == "text_completion"
    assert done.choices[0].text == PROMPT  # the chaos upstream echoes the prompt
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None and done.usage.prompt_tokens > 0
    [row] = usage_rows(gw, request_id=raw.headers["x-request-id"])
    assert row["endpoint"] == "completions" and row["status"] == 200
    assert row["input_tokens"] == done.usage.prompt_tokens
    assert row["output_tokens"] == done.usage.completion_tokens


@pytest.mark.parametrize("alias", ["instruct", "chat-as-text"])
def test_streamed_text_completion(gw: Any, alias: str) -> None:
    chunks = list(
        client(gw).completions.create(
            model=alias,
            prompt=PROMPT,
            max_tokens=50,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.object == "text_completion" for c in chunks)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == PROMPT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = [c.usage for c in chunks if c.usage is not None]
    assert usage and usage[-1].completion_tokens == len(PROMPT.split())


def test_default_max_tokens_is_sixteen(gw: Any) -> None:
    long_prompt = " ".join(f"w{i}" for i in range(40))
    done = client(gw).completions.create(model="instruct", prompt=long_prompt)
    assert len(done.choices[0].text.split()) == 16
    assert done.choices[0].finish_reason == "length"


def test_a_chat_model_is_not_translated_unless_the_alias_opts_in(gw: Any) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client(gw).completions.create(model="chat", prompt=PROMPT)
    assert "completions_from_chat" in refused.value.message
    assert refused.value.body["param"] == "model"  # type: ignore[index]


def test_completions_only_fields_need_a_native_endpoint(gw: Any) -> None:
    api = client(gw)
    with pytest.raises(openai.BadRequestError) as refused:
        api.completions.create(model="chat-as-text", prompt=PROMPT, echo=True)
    assert "`echo`" in refused.value.message
    native = api.completions.create(model="instruct", prompt=PROMPT, suffix="!")
    assert native.choices[0].text == PROMPT


@pytest.mark.parametrize(
    "body",
    [
        {"model": "instruct"},
        {"model": "instruct", "prompt": 3},
        {"model": "instruct", "prompt": ["a", "b"]},
        {"model": "instruct", "prompt": [1, 2, 3]},
        {"model": "instruct", "prompt": "x", "max_tokens": "many"},
        {"model": "nope", "prompt": "x"},
    ],
)
def test_bad_completion_requests_are_precise_4xx(gw: Any, body: dict[str, Any]) -> None:
    resp = httpx.post(
        gw.url + "/v1/completions",
        json=body,
        headers={"Authorization": f"Bearer {gw.create_key()}"},
    )
    assert resp.status_code in (400, 404), resp.text
    assert resp.json()["error"]["message"]
    assert "Traceback" not in resp.text


def test_completions_need_a_key(gw: Any) -> None:
    resp = httpx.post(gw.url + "/v1/completions", json={"model": "instruct", "prompt": "x"})
    assert resp.status_code == 401


def test_the_local_model_completes_a_raw_prompt(tmp_path: Path) -> None:
    """The bundled model serves /v1/completions natively: no chat template, its own counts."""
    config = base_config(
        f"sqlite:///{tmp_path}/ph.db",
        tmp_path,
        providers={"local": {"type": "llamacpp"}},
        models={"local": {"targets": [{"provider": "local", "model": "smollm2"}]}},
    )
    with running_gateway(config) as gw:
        api = client(gw)
        done = api.completions.create(
            model="local", prompt="The capital of France is", max_tokens=6, temperature=0
        )
        chunks = list(
            api.completions.create(
                model="local",
                prompt="The capital of France is",
                max_tokens=6,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        with pytest.raises(openai.BadRequestError) as refused:
            api.completions.create(model="local", prompt="x", echo=True)
    assert done.object == "text_completion" and done.choices[0].text.strip()
    assert done.choices[0].finish_reason == "length"
    # Five prompt tokens: the raw text, not the chat template around it.
    assert done.usage is not None and done.usage.prompt_tokens < 10
    assert done.usage.completion_tokens == 6
    streamed = "".join(c.choices[0].text for c in chunks if c.choices)
    assert streamed.strip()
    assert [c.usage.completion_tokens for c in chunks if c.usage] == [6]
    assert "`echo`" in refused.value.message
