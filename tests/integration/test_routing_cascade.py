"""Cascades: the cheap alias first, escalated when its answer fails a validator; both paid."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import ADMIN_KEY, ThreadedGateway, base_config, running_gateway
from tests.support.ledger import usage_rows

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "city",
        "schema": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string"}},
        },
    },
}
PRICES = {
    "small": {"input": "1", "output": "1"},
    "large": {"input": "10", "output": "10"},
    "grader": {"input": "0", "output": "0"},
}


def cascade_gateway(store_url: str, tmp_path: Path, cheap_reply: str, **cascade: Any) -> Any:
    providers = {
        "cheap": {"type": "chaos", "reply": cheap_reply},
        "strong": {"type": "chaos", "reply": '{"city": "Paris"}'},
        "judge": {"type": "chaos", "reply": "0.2", "replies": {"Paris": "0.9"}},
    }
    models = {
        "chat": {
            "routing": {
                "strategy": "cascade",
                "cascade": {"steps": ["chat-cheap", "chat-strong"], **cascade},
            }
        },
        "chat-cheap": {"targets": [{"provider": "cheap", "model": "small"}]},
        "chat-strong": {"targets": [{"provider": "strong", "model": "large"}]},
        "grader": {"targets": [{"provider": "judge", "model": "grader"}]},
    }
    cfg = base_config(store_url, tmp_path, providers=providers, models=models, prices=PRICES)
    return running_gateway(cfg)


def ask(gw: ThreadedGateway, key: str, **body: Any) -> httpx.Response:
    payload = {"model": "chat", "messages": [{"role": "user", "content": "capital?"}], **body}
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json=payload,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_invalid_json_escalates_and_both_attempts_are_paid(store_url: str, tmp_path: Path) -> None:
    with cascade_gateway(store_url, tmp_path, "sure, it is Paris") as gw:
        key = gw.create_key(budget_usd="10")
        resp = ask(gw, key, response_format=SCHEMA)
        assert resp.status_code == 200, resp.text
        assert resp.json()["choices"][0]["message"]["content"] == '{"city": "Paris"}'
        assert resp.headers["x-pilothouse-route"] == "cascade; rule=cascade[1]; alias=chat-strong"
        [row] = usage_rows(gw, request_id=resp.headers["x-request-id"])
        cheap, strong = row["route_steps"]
        assert (cheap["alias"], cheap["passed"], cheap["failed"]) == (
            "chat-cheap",
            False,
            "json_schema",
        )
        assert strong["alias"] == "chat-strong" and strong["target"] == "strong/large"
        paid = Decimal(cheap["cost_usd"]) + Decimal(strong["cost_usd"])
        assert Decimal(cheap["cost_usd"]) > 0 and Decimal(strong["cost_usd"]) > 0
        assert Decimal(row["cost_pico"]) / 10**12 == paid, "the record carries both costs"
        assert Decimal(resp.headers["x-pilothouse-cost-usd"]) == paid
        assert row["input_tokens"] == cheap["input_tokens"] + strong["input_tokens"]
        assert row["route_reason"] == "chat-cheap: json_schema failed; chat-strong: served"
        trace = httpx.get(
            f"{gw.url}/admin/traces/{resp.headers['x-request-id']}", headers=ADMIN, timeout=30
        ).json()
        root = next(s for s in trace["spans"] if s["parent_span_id"] is None)
        assert '"failed":"json_schema"' in root["attributes"]["pilothouse.route.steps"]
        assert [a["model"] for a in trace["attempts"]] == ["small", "large"]


def test_a_valid_cheap_answer_is_served_without_escalating(tmp_path: Path) -> None:
    with cascade_gateway(f"sqlite:///{tmp_path}/ph.db", tmp_path, '{"city": "Lyon"}') as gw:
        resp = ask(gw, gw.create_key(), response_format=SCHEMA)
        assert resp.headers["x-pilothouse-target"] == "cheap/small"
        [row] = usage_rows(gw, request_id=resp.headers["x-request-id"])
        assert [s["alias"] for s in row["route_steps"]] == ["chat-cheap"]
        assert gw.runtime is not None and gw.runtime.providers["strong"].calls == 0  # type: ignore[attr-defined]


def test_a_low_judge_score_escalates(tmp_path: Path) -> None:
    judge = {"judge": {"alias": "grader", "min_score": 0.5}}
    with cascade_gateway(f"sqlite:///{tmp_path}/ph.db", tmp_path, "Lyon probably", **judge) as gw:
        resp = ask(gw, gw.create_key())
        assert resp.headers["x-pilothouse-target"] == "strong/large"
        [row] = usage_rows(gw, request_id=resp.headers["x-request-id"])
        cheap = row["route_steps"][0]
        assert (cheap["failed"], cheap["judge_score"]) == ("judge", 0.2)


def test_streams_are_not_cascaded_they_go_to_the_last_step(tmp_path: Path) -> None:
    with cascade_gateway(f"sqlite:///{tmp_path}/ph.db", tmp_path, "nope") as gw:
        resp = ask(gw, gw.create_key(), stream=True)
        assert resp.status_code == 200
        assert resp.headers["x-pilothouse-target"] == "strong/large"
        assert resp.headers["x-pilothouse-route"] == "cascade; rule=cascade[1]; alias=chat-strong"
