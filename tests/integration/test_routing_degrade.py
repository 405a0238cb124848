"""Degraded mode: every breaker open, or forced by an operator (audited, shared over Redis)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import ADMIN_KEY, ThreadedGateway, base_config, running_gateway
from tests.support.ledger import usage_rows
from tests.support.recording_upstream import Recorder, recording_upstream

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


def config(store_url: str, tmp_path: Path, rec: Recorder, **extra: Any) -> dict[str, Any]:
    providers = {
        "dead": {"type": "chaos", "error_rate": 1.0},
        "alive": {"type": "chaos"},
        "small": {
            "type": "openai",
            "base_url": rec.url + "/v1",
            "api_key": "env:PH_TEST_UPSTREAM_KEY",
        },
    }
    models = {
        "chat": {
            "targets": [{"provider": "dead", "model": "a"}, {"provider": "dead", "model": "b"}],
            "degrade": {
                "when_all_open": "chat-small",
                "strip_tools_when_degraded": True,
                "timeout_s_when_degraded": 10,
            },
        },
        "healthy": {
            "targets": [{"provider": "alive", "model": "m"}],
            "degrade": {"when_all_open": "chat-small"},
        },
        "plain": {"targets": [{"provider": "alive", "model": "m"}]},
        "chat-small": {"targets": [{"provider": "small", "model": "gpt-4o-mini"}]},
    }
    routing = {"breaker": {"failure_threshold": 1, "cooldown_s": 3600}}
    return base_config(
        store_url, tmp_path, providers=providers, models=models, routing=routing, **extra
    )


def chat(gw: ThreadedGateway, key: str, model: str, **body: Any) -> httpx.Response:
    payload = {"model": model, "messages": [{"role": "user", "content": "status?"}], **body}
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json=payload,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_all_breakers_open_sends_requests_to_the_degrade_alias_without_tools(
    store_url: str, tmp_path: Path
) -> None:
    with recording_upstream() as rec, running_gateway(config(store_url, tmp_path, rec)) as gw:
        key = gw.create_key()
        first = chat(gw, key, "chat", tools=TOOLS)
        assert first.status_code == 502, "both targets fail and their breakers open"
        assert "x-pilothouse-degraded" not in first.headers
        degraded = chat(gw, key, "chat", tools=TOOLS, tool_choice="auto")
        assert degraded.status_code == 200, degraded.text
        assert degraded.headers["x-pilothouse-degraded"] == "true"
        assert (
            degraded.headers["x-pilothouse-route"] == "ordered; alias=chat-small; degraded=all_open"
        )
        assert degraded.headers["x-pilothouse-target"] == "small/gpt-4o-mini"
        [seen] = rec.bodies
        assert "tools" not in seen and "tool_choice" not in seen, "tools are stripped upstream"
        [row] = usage_rows(gw, request_id=degraded.headers["x-request-id"])
        assert row["route_degraded"] is True and row["alias"] == "chat-small"
        assert "every target of `chat` is open" in row["route_reason"]
        assert "tools stripped" in row["route_reason"]
        trace = httpx.get(
            f"{gw.url}/admin/traces/{degraded.headers['x-request-id']}", headers=ADMIN, timeout=30
        ).json()
        root = next(s for s in trace["spans"] if s["parent_span_id"] is None)
        assert root["attributes"]["pilothouse.route.degraded"] is True
        assert root["attributes"]["pilothouse.route.degrade_reason"] == "all_open"
        metrics = httpx.get(gw.url + "/metrics", headers=ADMIN, timeout=30).text
        assert 'pilothouse_degraded_requests_total{alias="chat",reason="all_open"} 1.0' in metrics
        assert chat(gw, key, "healthy").headers.get("x-pilothouse-degraded") is None


def test_operator_forces_degraded_mode_and_lifts_it_audited(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/ph.db"
    with recording_upstream() as rec, running_gateway(config(store, tmp_path, rec)) as gw:
        key = gw.create_key()
        ops = {"Authorization": f"Bearer {gw.create_key(name='ops', role='operator')}"}
        eyes = {"Authorization": f"Bearer {gw.create_key(name='eyes', role='viewer')}"}

        def degrade(body: Any, headers: dict[str, str] = ops) -> httpx.Response:
            return httpx.post(gw.url + "/admin/degrade", json=body, headers=headers, timeout=30)

        assert degrade({"alias": "healthy", "on": True}, eyes).status_code == 403
        assert degrade({"alias": "nope", "on": True}).status_code == 404
        assert degrade({"alias": "plain", "on": True}).json()["error"]["code"] == (
            "no_degrade_config"
        )
        bad = degrade({"alias": "healthy", "on": "yes"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "on"
        assert degrade({"alias": "healthy", "on": True, "color": 1}).status_code == 400

        on = degrade({"alias": "healthy", "on": True, "reason": "provider incident"})
        assert on.status_code == 200 and on.json()["degrade_to"] == "chat-small"
        forced = chat(gw, key, "healthy", tools=TOOLS)
        assert forced.headers["x-pilothouse-degraded"] == "true"
        assert forced.headers["x-pilothouse-target"] == "small/gpt-4o-mini"
        assert "tools" not in rec.bodies[-1]
        listed = httpx.get(gw.url + "/admin/degrade", headers=eyes, timeout=30).json()["data"]
        assert [(d["alias"], d["by"]) for d in listed] == [("healthy", "ops")]

        assert degrade({"alias": "healthy", "on": False}).status_code == 200
        back = chat(gw, key, "healthy")
        assert "x-pilothouse-degraded" not in back.headers
        assert back.headers["x-pilothouse-target"] == "alive/m"
        audit = httpx.get(gw.url + "/admin/audit", headers=ADMIN, timeout=30).json()["data"]
        actions = [
            (a["action"], a["target"], a["actor"]) for a in audit if "routing" in a["action"]
        ]
        assert sorted(actions) == [
            ("routing.degrade", "healthy", "ops"),
            ("routing.restore", "healthy", "ops"),
        ]


def test_forced_degrade_is_shared_across_replicas_over_redis(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    store = f"sqlite:///{tmp_path}/ph.db"
    redis = {"url": redis_url, "prefix": redis_prefix}
    with recording_upstream() as rec:
        cfg = config(store, tmp_path, rec, redis=redis)
        with running_gateway(cfg) as one, running_gateway(cfg) as two:
            key = one.create_key()
            with one.admin() as admin:
                resp = admin.post("/admin/degrade", json={"alias": "healthy", "on": True})
                assert resp.status_code == 200
            deadline = time.monotonic() + 10
            while True:  # the other replica hears it over pub/sub (or its 1 s poll)
                other = chat(two, key, "healthy")
                if other.headers.get("x-pilothouse-degraded") == "true":
                    break
                assert time.monotonic() < deadline, "replica two never saw the forced degrade"
            assert other.headers["x-pilothouse-target"] == "small/gpt-4o-mini"
