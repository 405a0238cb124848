"""Routing policies end to end: rules, weighted/latency/cost strategies, decisions recorded."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.gateway import ADMIN_KEY, ThreadedGateway, base_config, running_gateway
from tests.support.ledger import usage_rows

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}

# The issue's policy, as written, over chaos upstreams (one provider per serving alias).
ISSUE_YAML = """
models:
  chat:
    routing:
      strategy: rules                 # ordered (today's behaviour) | weighted | latency | cost | rules
      rules:
        - {when: {metadata.team: legal}, use: chat-strong}
        - {when: {input_tokens: {gt: 6000}}, use: chat-long}
        - {when: {requires: [tools]}, use: chat-tools}
        - {when: {budget_used: {gt: 0.8}}, use: chat-cheap}          # the key's budget share spent
        - {when: {difficulty: {lt: 0.3}}, use: chat-cheap}           # a router plugin's score
      default: chat-standard
    degrade:
      when_all_open: chat-fallback-small  # every target's breaker open
      strip_tools_when_degraded: true
      timeout_s_when_degraded: 10
"""  # noqa: E501
SERVING = ("chat-strong", "chat-long", "chat-tools", "chat-cheap", "chat-standard")
HARD = (
    "Prove the theorem step by step, analyze the algorithm's complexity, compare the "
    "trade-offs of both designs and explain why the second one is optimal for this contract."
)
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


def issue_models(**extra: Any) -> dict[str, Any]:
    models: dict[str, Any] = yaml.safe_load(ISSUE_YAML)["models"]
    for alias in (*SERVING, "chat-fallback-small"):
        models[alias] = {"targets": [{"provider": alias, "model": alias}]}
    models.update(extra)
    return models


def chaos_providers(*names: str, **overrides: dict[str, Any]) -> dict[str, Any]:
    return {n: {"type": "chaos", **overrides.get(n.replace("-", "_"), {})} for n in names}


def gateway(tmp_path: Path, providers: dict[str, Any], models: dict[str, Any], **extra: Any) -> Any:
    config = base_config(
        f"sqlite:///{tmp_path}/ph.db", tmp_path, providers=providers, models=models, **extra
    )
    return running_gateway(config)


def chat(
    gw: ThreadedGateway, key: str, content: str, *, metadata: str | None = None, **body: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if metadata is not None:
        headers["x-pilothouse-metadata"] = metadata
    payload = {"model": "chat", "messages": [{"role": "user", "content": content}], **body}
    return httpx.post(gw.url + "/v1/chat/completions", json=payload, headers=headers, timeout=30)


def served(resp: httpx.Response) -> str:
    assert resp.status_code == 200, resp.text
    return resp.headers["x-pilothouse-target"].split("/", 1)[0]


def test_issue_rules_pick_the_alias_and_every_decision_is_recorded(tmp_path: Path) -> None:
    providers = chaos_providers(*SERVING, "chat-fallback-small")
    with gateway(tmp_path, providers, issue_models()) as gw:
        key = gw.create_key()
        legal = chat(gw, key, HARD, metadata='{"team": "legal"}')
        long = chat(gw, key, "word " * 6000)
        tools = chat(gw, key, HARD, tools=TOOLS)
        easy = chat(gw, key, "hi, thanks")
        hard = chat(gw, key, HARD)
        assert [served(r) for r in (legal, long, tools, easy, hard)] == [
            "chat-strong",
            "chat-long",
            "chat-tools",
            "chat-cheap",
            "chat-standard",
        ]
        assert legal.headers["x-pilothouse-route"] == "rules; rule=rules[0]; alias=chat-strong"
        assert hard.headers["x-pilothouse-route"] == "rules; rule=default; alias=chat-standard"
        assert "x-pilothouse-degraded" not in hard.headers
        rows = {r["request_id"]: r for r in usage_rows(gw)}
        row = rows[long.headers["x-request-id"]]
        assert row["alias"] == "chat-long" and row["route_policy"] == "rules"
        assert row["route_rule"] == "rules[1]"
        assert row["route_reason"].startswith("input_tokens=") and "gt 6000" in row["route_reason"]
        assert rows[easy.headers["x-request-id"]]["route_reason"].startswith("difficulty=")
        assert rows[tools.headers["x-request-id"]]["route_reason"] == "requires tools"
        assert rows[hard.headers["x-request-id"]]["route_degraded"] is False
        trace = httpx.get(
            f"{gw.url}/admin/traces/{legal.headers['x-request-id']}", headers=ADMIN, timeout=30
        ).json()
        root = next(s for s in trace["spans"] if s["parent_span_id"] is None)
        assert root["attributes"]["pilothouse.route.rule"] == "rules[0]"
        assert root["attributes"]["pilothouse.route.reason"] == "metadata.team=legal"
        assert root["attributes"]["pilothouse.route.requested"] == "chat"
        metrics = httpx.get(gw.url + "/metrics", headers=ADMIN, timeout=30).text
        decision = 'alias="chat",rule="rules[0]",served="chat-strong"'
        assert f"pilothouse_route_decisions_total{{{decision}}} 1.0" in metrics


def test_budget_share_rule_moves_a_spending_key_to_the_cheap_alias(tmp_path: Path) -> None:
    models = {
        "chat": {
            "routing": {
                "strategy": "rules",
                "rules": [
                    {"when": {"budget_used": {"gt": 0.8}}, "use": "cheap", "name": "thrifty"}
                ],
                "default": "standard",
            }
        },
        "standard": {"targets": [{"provider": "std", "model": "pricey"}]},
        "cheap": {"targets": [{"provider": "cheap", "model": "free"}]},
    }
    providers = chaos_providers("std", "cheap")
    providers["std"]["reported_completion_tokens"] = 9
    prices = {"pricey": {"input": "0", "output": "100000"}, "free": {"input": "0", "output": "0"}}
    with gateway(tmp_path, providers, models, prices=prices) as gw:
        key = gw.create_key(budget_usd="1.00")
        first = chat(gw, key, "one two three", max_tokens=9)  # 9 x 0.1 USD = 90% spent
        second = chat(gw, key, "one two three", max_tokens=9)
        assert (served(first), served(second)) == ("std", "cheap")
        assert second.headers["x-pilothouse-route"] == "rules; rule=thrifty; alias=cheap"
        [row] = usage_rows(gw, request_id=second.headers["x-request-id"])
        assert row["route_reason"] == "budget_used=0.9 gt 0.8"
        other = gw.create_key(name="fresh", budget_usd="1.00")
        assert served(chat(gw, other, "one two three", max_tokens=1)) == "std"


def test_key_and_metadata_list_conditions(tmp_path: Path) -> None:
    models = {
        "chat": {
            "routing": {
                "strategy": "rules",
                "rules": [
                    {"when": {"key.name": "batch-jobs"}, "use": "cheap"},
                    {"when": {"metadata.tier": ["gold", "platinum"]}, "use": "strong"},
                ],
            },
            "targets": [{"provider": "own", "model": "m"}],
        },
        "cheap": {"targets": [{"provider": "cheap", "model": "m"}]},
        "strong": {"targets": [{"provider": "strong", "model": "m"}]},
    }
    with gateway(tmp_path, chaos_providers("own", "cheap", "strong"), models) as gw:
        batch = gw.create_key(name="batch-jobs")
        user = gw.create_key(name="app")
        assert served(chat(gw, batch, "x", metadata='{"tier": "gold"}')) == "cheap"
        assert served(chat(gw, user, "x", metadata='{"tier": "gold"}')) == "strong"
        assert served(chat(gw, user, "x", metadata='{"tier": "bronze"}')) == "own"  # no default


def test_weighted_strategy_splits_by_weight_within_an_interval(tmp_path: Path) -> None:
    models = {
        "chat": {
            "routing": {"strategy": "weighted"},
            "targets": [
                {"provider": "a", "model": "m", "weight": 3},
                {"provider": "b", "model": "m", "weight": 1},
                {"provider": "never", "model": "m", "weight": 0},
            ],
        }
    }
    n = 160
    with gateway(tmp_path, chaos_providers("a", "b", "never"), models) as gw:
        key = gw.create_key()
        responses = [chat(gw, key, "hello") for _ in range(n)]
        picks = [served(r) for r in responses]
        assert responses[0].headers["x-pilothouse-route"] == "weighted; alias=chat"
    share = picks.count("a") / n
    sd = math.sqrt(0.75 * 0.25 / n)
    assert abs(share - 0.75) < 5 * sd, f"share of a {share:.3f} is not 0.75 +- {5 * sd:.3f}"
    assert picks.count("never") == 0, "a weight-0 target is only a fallback"


def test_latency_strategy_prefers_the_fast_target_after_measuring_both(tmp_path: Path) -> None:
    models = {
        "chat": {
            "routing": {"strategy": "latency"},
            "targets": [{"provider": "slow", "model": "m"}, {"provider": "fast", "model": "m"}],
        }
    }
    slow = {"latency_ms": {"dist": "fixed", "value": 150}}
    providers = chaos_providers("slow", "fast", slow=slow)
    with gateway(tmp_path, providers, models) as gw:
        key = gw.create_key()
        picks = [served(chat(gw, key, "hello")) for _ in range(8)]
        stream_picks = [served(chat(gw, key, "hello", stream=True)) for _ in range(4)]
    assert sorted(picks[:2]) == ["fast", "slow"], "both targets are measured first"
    assert picks[2:] == ["fast"] * 6
    assert stream_picks == ["fast"] * 4, "until a TTFT is measured, latency stands in"


def test_cost_strategy_picks_the_cheapest_target_that_serves_the_request(tmp_path: Path) -> None:
    models = {
        "chat": {
            "routing": {"strategy": "cost"},
            "targets": [
                {"provider": "big", "model": "big-model"},
                {"provider": "mini", "model": "mini-model", "capabilities": ["json_object"]},
                {"provider": "mid", "model": "mid-model", "capabilities": ["tools"]},
            ],
        }
    }
    prices = {
        "big-model": {"input": "10", "output": "30"},
        "mid-model": {"input": "1", "output": "3"},
        "mini-model": {"input": "0.1", "output": "0.3"},
    }
    with gateway(tmp_path, chaos_providers("big", "mini", "mid"), models, prices=prices) as gw:
        key = gw.create_key()
        plain = chat(gw, key, "hello")
        tools = chat(gw, key, "hello", tools=TOOLS)
        vision = httpx.post(
            gw.url + "/v1/chat/completions",
            json={
                "model": "chat",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is this"},
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/png;base64,AA=="},
                            },
                        ],
                    }
                ],
            },
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert [served(r) for r in (plain, tools, vision)] == ["mini", "mid", "big"]
        [row] = usage_rows(gw, request_id=tools.headers["x-request-id"])
        assert row["route_policy"] == "cost"
        assert row["route_reason"].startswith("cheapest serving tools:")


def test_rules_pick_the_alias_then_a_rollout_on_it_splits_it(tmp_path: Path) -> None:
    models = {
        "chat": {
            "routing": {
                "strategy": "rules",
                "rules": [{"when": {"metadata.team": "legal"}, "use": "strong"}],
                "default": "standard",
            }
        },
        "standard": {"targets": [{"provider": "std", "model": "m"}]},
        "standard-next": {"targets": [{"provider": "next", "model": "m"}]},
        "strong": {"targets": [{"provider": "strong", "model": "m"}]},
    }
    with gateway(tmp_path, chaos_providers("std", "next", "strong"), models) as gw:
        key = gw.create_key()
        with gw.admin() as admin:
            resp = admin.post(
                "/admin/rollouts",
                json={
                    "alias": "standard",
                    "candidate_alias": "standard-next",
                    "mode": "canary",
                    "percent": 100,
                    "sticky": "none",
                },
            )
            assert resp.status_code == 201, resp.text
        plain = chat(gw, key, HARD)
        legal = chat(gw, key, HARD, metadata='{"team": "legal"}')
        assert served(plain) == "next" and plain.headers["x-pilothouse-arm"] == "candidate"
        assert plain.headers["x-pilothouse-route"] == "rules; rule=default; alias=standard"
        assert served(legal) == "strong" and "x-pilothouse-arm" not in legal.headers
        [row] = usage_rows(gw, request_id=plain.headers["x-request-id"])
        assert (row["alias"], row["rollout_arm"], row["route_rule"]) == (
            "standard-next",
            "candidate",
            "default",
        )


def test_a_rules_alias_refuses_embeddings_precisely(tmp_path: Path) -> None:
    with gateway(tmp_path, chaos_providers(*SERVING, "chat-fallback-small"), issue_models()) as gw:
        resp = httpx.post(
            gw.url + "/v1/embeddings",
            json={"model": "chat", "input": "x"},
            headers={"Authorization": f"Bearer {gw.create_key()}"},
            timeout=30,
        )
    assert resp.status_code == 400
    assert "routes chat requests by rules" in resp.json()["error"]["message"]
