"""``/v1/moderations``: passed to an upstream that has it, through the gateway's door."""

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


@pytest.fixture
def gw(tmp_path: Path) -> Any:
    with chaos_upstream(flag_words=["idiot"]) as url:
        providers = {
            "openai": {"type": "openai", "base_url": url, "api_key": "env:HOME"},
            "flaky": {"type": "chaos", "script": ["error:503"], "flag_words": ["idiot"]},
            "chaos": {"type": "chaos"},
        }
        models = {
            "mod": {
                "targets": [
                    {"provider": "flaky", "model": "omni-moderation-latest"},
                    {"provider": "openai", "model": "omni-moderation-latest"},
                ]
            },
            "chat": {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}]},
        }
        config = base_config(
            f"sqlite:///{tmp_path}/ph.db",
            tmp_path,
            providers=providers,
            models=models,
            routing={"moderation_model": "mod"},
        )
        with running_gateway(config) as gw:
            yield gw


def test_the_openai_client_moderates_through_a_fallback(gw: Any) -> None:
    api = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.create_key(), max_retries=0)
    raw = api.moderations.with_raw_response.create(input=["you idiot", "have a nice day"])
    result = raw.parse()
    assert [r.flagged for r in result.results] == [True, False]
    assert result.results[0].categories.harassment is True
    assert raw.headers["x-pilothouse-target"] == "openai/omni-moderation-latest"
    [row] = usage_rows(gw, request_id=raw.headers["x-request-id"])
    assert row["endpoint"] == "moderations" and row["status"] == 200
    assert row["attempts"] == 2 and row["cost_pico"] == 0


def test_named_model_and_missing_moderation_endpoint(gw: Any) -> None:
    key = gw.create_key()
    headers = {"Authorization": f"Bearer {key}"}
    ok = httpx.post(
        gw.url + "/v1/moderations", json={"model": "mod", "input": "fine"}, headers=headers
    )
    assert ok.status_code == 200 and ok.json()["results"][0]["flagged"] is False
    chat = httpx.post(
        gw.url + "/v1/moderations", json={"model": "chat", "input": "x"}, headers=headers
    )
    assert chat.status_code == 200  # the chaos provider moderates too (for drills)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": ""}, 400, "input"),
        ({"input": [1, 2]}, 400, "input"),
        ({"input": "x", "model": 7}, 400, "model"),
        ({"input": "x", "model": "nope"}, 404, "model"),
    ],
)
def test_bad_moderation_requests(gw: Any, body: dict[str, Any], status: int, param: str) -> None:
    resp = httpx.post(
        gw.url + "/v1/moderations",
        json=body,
        headers={"Authorization": f"Bearer {gw.create_key()}"},
    )
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["param"] == param


def test_moderation_needs_a_key(gw: Any) -> None:
    assert httpx.post(gw.url + "/v1/moderations", json={"input": "x"}).status_code == 401


def test_a_provider_without_moderation_is_a_precise_400(tmp_path: Path) -> None:
    with chaos_upstream() as url:
        config = base_config(
            f"sqlite:///{tmp_path}/ph.db",
            tmp_path,
            providers={"claude": {"type": "anthropic", "api_key": "env:HOME", "base_url": url}},
            models={"m": {"targets": [{"provider": "claude", "model": "claude-x"}]}},
        )
        with running_gateway(config) as gw:
            resp = httpx.post(
                gw.url + "/v1/moderations",
                json={"model": "m", "input": "x"},
                headers={"Authorization": f"Bearer {gw.create_key()}"},
            )
            no_default = httpx.post(
                gw.url + "/v1/moderations",
                json={"input": "x"},
                headers={"Authorization": f"Bearer {gw.create_key()}"},
            )
    assert resp.status_code == 400 and "no moderation endpoint" in resp.json()["error"]["message"]
    assert no_default.status_code == 400
    assert "routing.moderation_model" in no_default.json()["error"]["message"]
