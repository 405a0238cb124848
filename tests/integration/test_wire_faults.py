"""The `openai` provider against a real flaky HTTP upstream: resets, garbage, stalls, 429s."""

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
MESSAGES = [{"role": "user", "content": "over the wire"}]


def config(tmp_path: Path, url: str, **provider: Any) -> dict[str, Any]:
    return base_config(
        f"sqlite:///{tmp_path}/w.db",
        tmp_path,
        providers={
            "up": {
                "type": "openai",
                "base_url": url,
                "api_key": "env:PH_TEST_UPSTREAM_KEY",
                **provider,
            }
        },
        models={"chat": {"targets": [{"provider": "up", "model": "gpt-4o-mini"}], "retries": 2}},
    )


def post(gw: Any, key: str, **body: Any) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        timeout=60,
        json={"model": "chat", "messages": MESSAGES, **body},
        headers={"Authorization": f"Bearer {key}"},
    )


@pytest.mark.parametrize("fault", ["reset", "malformed", "error:503", "error:429"])
def test_retryable_wire_faults_are_retried(tmp_path: Path, fault: str) -> None:
    with (
        chaos_upstream(script=[fault], retry_after_s=0) as url,
        running_gateway(config(tmp_path, url)) as gw,
    ):
        resp = post(gw, gw.create_key())
        assert resp.status_code == 200, resp.text
        assert resp.json()["choices"][0]["message"]["content"] == "over the wire"
        assert resp.headers["x-pilothouse-attempts"] == "2"
        [row] = usage_rows(gw)
        assert (row["input_tokens"], row["output_tokens"], row["estimated"]) == (6, 3, False)


def test_upstream_client_error_passes_through(tmp_path: Path) -> None:
    with chaos_upstream(script=["error:422"]) as url, running_gateway(config(tmp_path, url)) as gw:
        resp = post(gw, gw.create_key())
        assert resp.status_code == 422
        assert "chaos injected error" in resp.json()["error"]["message"]
        assert resp.headers["x-pilothouse-attempts"] == "1"


def test_stalled_stream_ends_with_error_event(tmp_path: Path) -> None:
    with (
        chaos_upstream(script=["stall:2"], stall_s=30) as url,
        running_gateway(config(tmp_path, url, stream_idle_timeout_s=0.3)) as gw,
    ):
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.create_key(), max_retries=0)
        got = []
        with pytest.raises(openai.APIError, match="mid-stream"):
            for chunk in client.chat.completions.create(
                model="chat", messages=MESSAGES, stream=True
            ):
                got.append(chunk)
        assert [c.choices[0].delta.content for c in got] == ["", "over"]
        [row] = usage_rows(gw)
        assert row["error_type"] == "stream_interrupted" and row["status"] == 504


def test_cut_stream_after_first_byte_is_reported_not_retried(tmp_path: Path) -> None:
    with chaos_upstream(script=["cut:2"]) as url, running_gateway(config(tmp_path, url)) as gw:
        key = gw.create_key()
        with httpx.stream(
            "POST",
            gw.url + "/v1/chat/completions",
            timeout=60,
            json={"model": "chat", "messages": MESSAGES, "stream": True},
            headers={"Authorization": f"Bearer {key}"},
        ) as resp:
            lines = [ln for ln in resp.iter_lines() if ln.startswith("data:")]
        assert '"stream_interrupted"' in lines[-1]
        assert "[DONE]" not in lines[-1]
        [row] = usage_rows(gw)
        assert row["attempts"] == 1


def test_streamed_usage_comes_from_the_upstream(tmp_path: Path) -> None:
    with chaos_upstream() as url, running_gateway(config(tmp_path, url)) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.create_key(), max_retries=0)
        chunks = list(client.chat.completions.create(model="chat", messages=MESSAGES, stream=True))
        assert all(c.usage is None for c in chunks), "client did not ask for usage"
        [row] = usage_rows(gw)
        assert (row["input_tokens"], row["output_tokens"], row["estimated"]) == (6, 3, False)
