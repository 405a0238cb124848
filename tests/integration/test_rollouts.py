"""Rollouts through a real gateway on SQLite and PostgreSQL: split, headers, records, API."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.gateway import ThreadedGateway, base_config, running_gateway
from tests.support.ledger import usage_rows

pytestmark = pytest.mark.integration
MESSAGES = [{"role": "user", "content": "hello"}]
BUNDLE: dict[str, Any] = {
    "name": "support-answer",
    "description": "Answers customer questions.",
    "model": "chat",
    "params": {"max_tokens": 20},
    "messages": [{"role": "system", "content": "You are version one."}],
}


def config(store_url: str, tmp: Path, **extra: Any) -> dict[str, Any]:
    return base_config(
        store_url,
        tmp,
        providers={
            "chaos": {"type": "chaos"},
            "chaos-next": {"type": "chaos", "reply": "candidate says hi"},
            "chaos-bad": {"type": "chaos", "error_rate": 1.0},
        },
        models={
            "chat": {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}]},
            "chat-next": {"targets": [{"provider": "chaos-next", "model": "gpt-4o"}]},
            "chat-bad": {"targets": [{"provider": "chaos-bad", "model": "gpt-4o"}]},
        },
        prices={"gpt-4o-mini": {"input": 1, "output": 1}, "gpt-4o": {"input": 100, "output": 100}},
        rollouts={"evaluate_interval_s": 60},  # the tests drive evaluation themselves
        **extra,
    )


def chat(gw: ThreadedGateway, key: str, *, user: str | None = None, **body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if user is not None:
        headers["x-pilothouse-metadata"] = orjson.dumps({"user": user}).decode()
    return httpx.post(
        gw.url + "/v1/chat/completions",
        headers=headers,
        json={"model": "chat", "messages": MESSAGES, **body},
        timeout=30,
    )


def tick(gw: ThreadedGateway) -> None:
    assert gw.runtime is not None
    asyncio.run_coroutine_threadsafe(gw.runtime.rollouts.tick(), gw.server_loop()).result(60)


def test_alias_canary_splits_by_sticky_user_and_records_the_arm(
    store_url: str, tmp_path: Path
) -> None:
    with running_gateway(config(store_url, tmp_path)) as gw, gw.admin() as admin:
        key = gw.create_key(name="app")
        started = admin.post(
            "/admin/rollouts",
            json={
                "alias": "chat",
                "candidate_alias": "chat-next",
                "mode": "canary",
                "percent": 30,
                "sticky": "user",
                "min_samples": 5,
            },
        )
        assert started.status_code == 201, started.text
        rollout = started.json()
        assert rollout["state"] == "running" and rollout["share"] == 0.3
        again = admin.post("/admin/rollouts", json={"alias": "chat", "candidate_alias": "chat-bad"})
        assert again.status_code == 409 and again.json()["error"]["code"] == "rollout_running"

        arms: dict[str, str] = {}
        for i in range(60):
            resp = chat(gw, key, user=f"u{i}")
            assert resp.status_code == 200, resp.text
            arm = resp.headers["x-pilothouse-arm"]
            assert resp.headers["x-pilothouse-rollout"] == rollout["id"]
            target = resp.headers["x-pilothouse-target"]
            assert target == ("chaos-next/gpt-4o" if arm == "candidate" else "chaos/gpt-4o-mini")
            arms[f"u{i}"] = arm
        for i in range(0, 60, 7):  # the same users again: never another arm
            assert chat(gw, key, user=f"u{i}").headers["x-pilothouse-arm"] == arms[f"u{i}"]
        assert 0 < list(arms.values()).count("candidate") < 60

        rows = usage_rows(gw)
        served = [r for r in rows if r["rollout_id"] == rollout["id"]]
        assert len(served) == 60 + len(range(0, 60, 7))
        assert {r["rollout_arm"] for r in served} == {"baseline", "candidate"}
        for r in served:
            assert r["alias"] == ("chat-next" if r["rollout_arm"] == "candidate" else "chat")

        status = admin.get(f"/admin/rollouts/{rollout['id']}").json()
        n_cand = list(arms.values()).count("candidate") + sum(
            arms[f"u{i}"] == "candidate" for i in range(0, 60, 7)
        )
        assert status["arms"]["candidate"]["requests"] == n_cand
        assert status["arms"]["baseline"]["requests"] == len(served) - n_cand
        assert status["arms"]["candidate"]["errors"] == 0
        lo, hi = status["arms"]["candidate"]["error_rate"]["ci"]
        assert lo == 0.0 and 0 < hi < 1
        assert status["srm"]["checked"] is True and 0 <= status["srm"]["p_value"] <= 1
        verdicts = {g["metric"]: g for g in status["guards"]}
        assert verdicts["error_rate"]["state"] == "pass"
        assert verdicts["error_rate"]["statistic"] <= verdicts["error_rate"]["boundary"]
        assert verdicts["latency_p95_s"]["state"] in ("waiting", "pass")
        listed = admin.get("/admin/rollouts", params={"state": "running"}).json()["data"]
        assert [r["id"] for r in listed] == [rollout["id"]]
        assert admin.get("/admin/rollouts", params={"state": "nope"}).status_code == 400

        back = admin.post(f"/admin/rollouts/{rollout['id']}/rollback", json={"reason": "done"})
        assert back.status_code == 200 and back.json()["state"] == "rolled_back"
        assert admin.post(f"/admin/rollouts/{rollout['id']}/rollback").status_code == 409
        for i in range(20):
            resp = chat(gw, key, user=f"u{i}")
            assert resp.headers["x-pilothouse-target"] == "chaos/gpt-4o-mini"
            assert "x-pilothouse-arm" not in resp.headers
        audit = admin.get("/admin/audit", params={"action": "rollout.rollback"}).json()["data"]
        assert [(a["actor"], a["target"]) for a in audit] == [("bootstrap", rollout["id"])]


def test_failing_candidate_is_retried_on_the_baseline_and_rolled_back_by_its_guard(
    store_url: str, tmp_path: Path
) -> None:
    with running_gateway(config(store_url, tmp_path)) as gw, gw.admin() as admin:
        key = gw.create_key(name="app")
        rollout = admin.post(
            "/admin/rollouts",
            json={
                "alias": "chat",
                "candidate_alias": "chat-bad",
                "percent": 50,
                "min_samples": 10,
                "guards": [{"metric": "error_rate", "max_increase": 0.05}],
            },
        ).json()
        for _ in range(40):
            resp = chat(gw, key)
            assert resp.status_code == 200, resp.text  # callers never see the bad candidate
            assert resp.headers["x-pilothouse-arm"] == "baseline"
        tick(gw)
        status = admin.get(f"/admin/rollouts/{rollout['id']}").json()
        assert status["state"] == "rolled_back"
        assert status["verdict"]["guard"] == "error_rate"
        assert status["arms"]["candidate"]["errors"] == status["arms"]["candidate"]["requests"] > 0
        assert status["ended_by"] == "rollout-guard"
        assert [(g["metric"], g["state"]) for g in status["guards"]] == [("error_rate", "breach")]
        assert chat(gw, key).headers["x-pilothouse-target"] == "chaos/gpt-4o-mini"


def test_prompt_rollout_serves_the_candidate_version_and_promote_moves_the_label(
    store_url: str, tmp_path: Path
) -> None:
    with running_gateway(config(store_url, tmp_path)) as gw, gw.admin() as admin:
        key = gw.create_key(name="app")
        assert admin.post("/admin/prompts", json=BUNDLE).status_code == 201
        two = {**BUNDLE, "messages": [{"role": "system", "content": "You are version two."}]}
        assert admin.post("/admin/prompts", json=two).json()["version"] == 2
        assert (
            admin.put("/admin/prompts/support-answer/labels/prod", json={"version": 1}).status_code
            == 200
        )
        bad = admin.post(
            "/admin/rollouts", json={"prompt": "support-answer", "label": "prod", "candidate": 9}
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "candidate"
        started = admin.post(
            "/admin/rollouts",
            json={
                "prompt": "support-answer",
                "label": "prod",
                "candidate": 2,
                "mode": "canary",
                "percent": 50,
                "sticky": "user",
            },
        )
        assert started.status_code == 201, started.text
        rollout = started.json()
        assert rollout["baseline"] == 1 and rollout["candidate"] == 2
        second = admin.post(
            "/admin/rollouts", json={"prompt": "support-answer", "label": "prod", "candidate": 2}
        )
        assert second.status_code == 409
        seen = set()
        for i in range(30):
            resp = chat(gw, key, user=f"p{i}", model="prompt:support-answer@prod")
            assert resp.status_code == 200, resp.text
            arm = resp.headers["x-pilothouse-arm"]
            version = "2" if arm == "candidate" else "1"
            assert resp.headers["x-pilothouse-prompt"] == f"support-answer@{version}"
            seen.add(arm)
        assert seen == {"baseline", "candidate"}
        rows = [r for r in usage_rows(gw) if r["rollout_id"] == rollout["id"]]
        assert {(r["rollout_arm"], r["prompt_version"]) for r in rows} == {
            ("baseline", 1),
            ("candidate", 2),
        }
        promoted = admin.post(f"/admin/rollouts/{rollout['id']}/promote", json={"reason": "good"})
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["state"] == "promoted"
        assert promoted.json()["label_move"]["version"] == 2
        history = admin.get("/admin/prompts/support-answer/labels/prod/history").json()["data"]
        assert history[-1]["to"] == 2
        assert history[-1]["evidence"][-1]["rollout_id"] == rollout["id"]
        for i in range(10):
            resp = chat(gw, key, user=f"p{i}", model="prompt:support-answer@prod")
            assert resp.headers["x-pilothouse-prompt"] == "support-answer@2"
            assert "x-pilothouse-arm" not in resp.headers


def test_shadow_answers_never_reach_the_client_and_cost_lands_on_the_candidate_arm(
    store_url: str, tmp_path: Path
) -> None:
    with running_gateway(config(store_url, tmp_path)) as gw, gw.admin() as admin:
        key = gw.create_key(name="app", budget_usd="10")
        rollout = admin.post(
            "/admin/rollouts",
            json={"alias": "chat", "candidate_alias": "chat-next", "mode": "shadow"},
        ).json()
        for _ in range(8):
            resp = chat(gw, key)
            assert resp.status_code == 200
            assert "candidate says hi" not in resp.text
            assert resp.headers["x-pilothouse-arm"] == "baseline"
            assert resp.headers["x-pilothouse-target"] == "chaos/gpt-4o-mini"
        assert gw.runtime is not None
        asyncio.run_coroutine_threadsafe(_drain(gw.runtime), gw.server_loop()).result(60)
        rows = [r for r in usage_rows(gw) if r["rollout_id"] == rollout["id"]]
        shadow = [r for r in rows if r["rollout_arm"] == "candidate"]
        assert len(shadow) == 8 and len(rows) == 16
        assert all(r["key_id"] is None and r["upstream_model"] == "gpt-4o" for r in shadow)
        assert all(r["cost_pico"] > 0 for r in shadow)
        status = admin.get(f"/admin/rollouts/{rollout['id']}").json()
        cand = status["arms"]["candidate"]
        assert cand["requests"] == 8
        assert (
            cand["cost_per_request_usd"]["value"]
            > status["arms"]["baseline"]["cost_per_request_usd"]["value"]
        )
        keys = admin.get("/admin/keys").json()["data"]
        app = next(k for k in keys if k["name"] == "app")
        baseline_cost = sum(r["cost_pico"] for r in rows if r["rollout_arm"] == "baseline")
        left = Decimal(app["budget_left_usd"])
        assert left == Decimal(10) - Decimal(baseline_cost) / Decimal(10**12)  # shadow not billed


async def _drain(runtime: Any) -> None:
    """Wait for this gateway's follow-up tasks (the shadow calls) to finish."""
    while runtime.background:
        await asyncio.gather(*list(runtime.background), return_exceptions=True)


def test_bad_rollout_requests_are_precise_400s(store_url: str, tmp_path: Path) -> None:
    with running_gateway(config(store_url, tmp_path)) as gw, gw.admin() as admin:
        cases = [
            ({"alias": "chat", "candidate_alias": "nope"}, "candidate_alias"),
            ({"alias": "chat", "candidate_alias": "chat-next", "percent": 0}, "percent"),
            ({"alias": "chat", "candidate_alias": "chat-next", "mode": "blue"}, "mode"),
            ({"alias": "chat", "candidate_alias": "chat-next", "sticky": "ip"}, "sticky"),
            ({"alias": "chat", "candidate_alias": "chat-next", "colour": 1}, "colour"),
            ({"alias": "chat", "candidate_alias": "chat-next", "steps": [5, 50]}, "step_after"),
            ({"alias": "chat", "candidate_alias": "chat-next", "alpha": 2}, "alpha"),
            (
                {
                    "alias": "chat",
                    "candidate_alias": "chat-next",
                    "guards": [{"metric": "error_rate"}],
                },
                "guards",
            ),
            ({}, "prompt"),
        ]
        for body, param in cases:
            resp = admin.post("/admin/rollouts", json=body)
            assert resp.status_code == 400, (body, resp.text)
            assert resp.json()["error"]["param"] == param, (body, resp.text)
        assert admin.get("/admin/rollouts/ro_missing").status_code == 404
        viewer = gw.admin()
        viewer.headers["Authorization"] = f"Bearer {gw.create_key(name='v', role='viewer')}"
        with viewer:
            assert viewer.get("/admin/rollouts").status_code == 200
            denied = viewer.post("/admin/rollouts", json={"alias": "chat"})
            assert denied.status_code == 403


def _sqlite(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    cfg = config(f"sqlite:///{tmp_path}/r.db", tmp_path, **extra)
    cfg["providers"]["chaos-slow"] = {"type": "chaos", "latency_ms": {"value": 300}}
    cfg["models"]["chat-slow"] = {"targets": [{"provider": "chaos-slow", "model": "gpt-4o"}]}
    return cfg


def test_a_slower_candidate_is_rolled_back_by_the_latency_guard(tmp_path: Path) -> None:
    with running_gateway(_sqlite(tmp_path)) as gw, gw.admin() as admin:
        key = gw.create_key(name="app")
        rollout = admin.post(
            "/admin/rollouts",
            json={
                "alias": "chat",
                "candidate_alias": "chat-slow",
                "percent": 50,
                "min_samples": 15,
                "guards": [{"metric": "latency_p95_s", "max_increase_ratio": 0.2}],
            },
        ).json()
        for i in range(60):  # the baseline reaches min_samples: the guard arms on its p95
            chat(gw, key, user=f"warm-{i}")
        tick(gw)
        armed = admin.get(f"/admin/rollouts/{rollout['id']}").json()["guards"][0]
        assert armed["state"] == "waiting" and armed["armed"] is True
        assert armed["line_s"] >= 1.2 * armed["tau_s"]
        for i in range(80):
            chat(gw, key, user=f"after-{i}")
        tick(gw)
        status = admin.get(f"/admin/rollouts/{rollout['id']}").json()
        assert status["state"] == "rolled_back", status["guards"]
        verdict = status["verdict"]["verdict"]
        assert status["verdict"]["guard"] == "latency_p95_s"
        assert verdict["statistic"] > verdict["boundary"] == 0.0
        assert status["verdict"]["arms"]["candidate"]["latency_p95_s"]["value"] >= 0.3


def test_online_eval_scores_land_on_their_arm_and_a_worse_candidate_is_rolled_back(
    tmp_path: Path,
) -> None:
    rules = [{"alias": "chat*", "rate": 1.0, "scorers": [{"type": "regex", "pattern": "hello"}]}]
    cfg = _sqlite(tmp_path, online_eval={"rules": rules})
    with running_gateway(cfg) as gw, gw.admin() as admin:
        key = gw.create_key(name="app")
        rollout = admin.post(
            "/admin/rollouts",
            json={
                "alias": "chat",
                "candidate_alias": "chat-next",  # replies "candidate says hi": no "hello"
                "percent": 50,
                "min_samples": 10,
                "guards": [{"metric": "online_eval.regex", "max_drop": 0.1}],
            },
        ).json()
        for i in range(60):
            chat(gw, key, user=f"e{i}")  # the baseline echoes "hello"
        assert gw.runtime is not None and gw.runtime.online is not None
        asyncio.run_coroutine_threadsafe(
            gw.runtime.online.stop(drain=True), gw.server_loop()
        ).result(60)
        status = admin.get(f"/admin/rollouts/{rollout['id']}").json()
        scores = {arm: status["arms"][arm]["online_eval"]["regex"] for arm in status["arms"]}
        assert scores["baseline"]["value"] == 1.0 and scores["candidate"]["value"] == 0.0
        assert scores["baseline"]["n"] + scores["candidate"]["n"] == 60
        tick(gw)
        status = admin.get(f"/admin/rollouts/{rollout['id']}").json()
        assert status["state"] == "rolled_back"
        assert status["verdict"]["guard"] == "online_eval.regex"


def test_a_progressive_canary_steps_up_after_its_requests(tmp_path: Path) -> None:
    with running_gateway(_sqlite(tmp_path)) as gw, gw.admin() as admin:
        key = gw.create_key(name="app")
        rollout = admin.post(
            "/admin/rollouts",
            json={
                "alias": "chat",
                "candidate_alias": "chat-next",
                "steps": [10, 50, 100],
                "step_after": {"requests": 5},
                "sticky": "user",
            },
        ).json()
        assert rollout["share"] == 0.1 and rollout["step_index"] == 0
        before = {i: chat(gw, key, user=f"s{i}").headers["x-pilothouse-arm"] for i in range(120)}
        assert list(before.values()).count("candidate") >= 5
        tick(gw)
        status = admin.get(f"/admin/rollouts/{rollout['id']}").json()
        assert status["step_index"] == 1 and status["share"] == 0.5
        assert status["srm"]["checked"] is False
        after = {i: chat(gw, key, user=f"s{i}").headers["x-pilothouse-arm"] for i in range(120)}
        # users only ever move to the candidate as its share grows
        assert all(after[i] == "candidate" for i, arm in before.items() if arm == "candidate")
        assert list(after.values()).count("candidate") > list(before.values()).count("candidate")
        steps = admin.get("/admin/audit", params={"action": "rollout.step"}).json()["data"]
        assert [s["details"]["percent"] for s in steps] == [50.0]


def test_promoting_an_alias_rollout_routes_the_alias_to_the_candidate_until_superseded(
    tmp_path: Path,
) -> None:
    with running_gateway(_sqlite(tmp_path)) as gw, gw.admin() as admin:
        key = gw.create_key(name="app")
        first = admin.post(
            "/admin/rollouts", json={"alias": "chat", "candidate_alias": "chat-next", "percent": 5}
        ).json()
        promoted = admin.post(f"/admin/rollouts/{first['id']}/promote", json={})
        assert promoted.status_code == 200 and promoted.json()["label_move"] is None
        assert admin.post(f"/admin/rollouts/{first['id']}/promote").status_code == 409
        for i in range(10):
            resp = chat(gw, key, user=f"a{i}")
            assert resp.headers["x-pilothouse-target"] == "chaos-next/gpt-4o"
        second = admin.post(
            "/admin/rollouts", json={"alias": "chat", "candidate_alias": "chat-slow", "percent": 5}
        ).json()
        admin.post(f"/admin/rollouts/{second['id']}/rollback", json={"reason": "no"})
        for i in range(10):  # the later rollout ended: the alias is the config's again
            resp = chat(gw, key, user=f"a{i}")
            assert resp.headers["x-pilothouse-target"] == "chaos/gpt-4o-mini"


def test_ab_reports_feedback_per_arm_with_a_recommendation_and_traces_carry_the_arm(
    tmp_path: Path,
) -> None:
    with running_gateway(_sqlite(tmp_path)) as gw, gw.admin() as admin:
        key = gw.create_key(name="app")
        rollout = admin.post(
            "/admin/rollouts",
            json={"alias": "chat", "candidate_alias": "chat-next", "mode": "ab", "split": 50},
        ).json()
        assert rollout["share"] == 0.5
        served = []
        for i in range(60):
            resp = chat(gw, key, user=f"f{i}")
            served.append((resp.headers["x-request-id"], resp.headers["x-pilothouse-arm"]))
        for request_id, arm in served:  # users are happier with the candidate
            body = {"request_id": request_id, "success": arm == "candidate"}
            sent = httpx.post(
                gw.url + "/v1/feedback",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
            assert sent.status_code in (200, 201), sent.text
        status = admin.get(f"/admin/rollouts/{rollout['id']}").json()
        fb = {arm: status["arms"][arm]["feedback"] for arm in ("baseline", "candidate")}
        n_cand = sum(arm == "candidate" for _, arm in served)
        assert fb["candidate"]["n"] == n_cand and fb["baseline"]["n"] == 60 - n_cand
        assert fb["candidate"]["success_rate"]["value"] == 1.0
        assert fb["baseline"]["success_rate"]["value"] == 0.0
        cost = fb["candidate"]["cost_per_successful_task_usd"]
        assert cost["value"] > 0 and cost["ci"][0] <= cost["value"] <= cost["ci"][1]
        assert fb["baseline"]["cost_per_successful_task_usd"]["value"] is None
        rec = status["recommendation"]
        assert rec["metrics"]["feedback_success_rate"]["verdict"] == "candidate better"
        assert rec["verdict"] == "candidate better"
        ttft = status["arms"]["candidate"]["ttft_mean_s"]
        assert ttft["value"] > 0 and ttft["ci"][1] >= ttft["value"]
        trace = admin.get(f"/admin/traces/{served[0][0]}").json()
        assert trace["spans"][0]["attributes"]["pilothouse.rollout.arm"] == served[0][1]
        assert trace["spans"][0]["attributes"]["pilothouse.rollout.id"] == rollout["id"]


def test_streamed_requests_follow_their_arm_and_fall_back_from_a_failing_candidate(
    tmp_path: Path,
) -> None:
    with running_gateway(_sqlite(tmp_path)) as gw, gw.admin() as admin:
        key = gw.create_key(name="app")
        rollout = admin.post(
            "/admin/rollouts",
            json={"alias": "chat", "candidate_alias": "chat-next", "percent": 100},
        ).json()
        resp = chat(gw, key, stream=True)
        assert resp.status_code == 200 and '"model":"gpt-4o"' in resp.text
        assert resp.headers["x-pilothouse-arm"] == "candidate"
        assert resp.headers["x-pilothouse-target"] == "chaos-next/gpt-4o"
        admin.post(f"/admin/rollouts/{rollout['id']}/rollback")
        bad = admin.post(
            "/admin/rollouts", json={"alias": "chat", "candidate_alias": "chat-bad", "percent": 100}
        ).json()
        resp = chat(gw, key, stream=True)
        assert resp.status_code == 200 and "data: [DONE]" in resp.text
        assert resp.headers["x-pilothouse-target"] == "chaos/gpt-4o-mini"
        rows = [r for r in usage_rows(gw) if r["rollout_id"] == bad["id"]]
        assert [(r["rollout_arm"], r["status"], r["stream"]) for r in rows] == [
            ("baseline", 200, True)
        ]
        status = admin.get(f"/admin/rollouts/{bad['id']}").json()
        assert status["arms"]["candidate"]["errors"] == 1  # the failure still counts


def test_bill_shadow_charges_the_shadow_call_to_the_callers_budget(tmp_path: Path) -> None:
    with running_gateway(_sqlite(tmp_path)) as gw, gw.admin() as admin:
        key = gw.create_key(name="app", budget_usd="10")
        rollout = admin.post(
            "/admin/rollouts",
            json={
                "alias": "chat",
                "candidate_alias": "chat-next",
                "mode": "shadow",
                "bill_shadow": True,
            },
        ).json()
        for _ in range(4):
            assert chat(gw, key).status_code == 200
        assert gw.runtime is not None
        asyncio.run_coroutine_threadsafe(_drain(gw.runtime), gw.server_loop()).result(60)
        rows = [r for r in usage_rows(gw) if r["rollout_id"] == rollout["id"]]
        assert len(rows) == 8 and len({r["key_id"] for r in rows}) == 1  # shadow rows keyed
        assert not any(r["reservation_exceeded"] for r in rows)
        app = next(k for k in admin.get("/admin/keys").json()["data"] if k["name"] == "app")
        spent = Decimal(sum(r["cost_pico"] for r in rows)) / Decimal(10**12)
        assert Decimal(app["budget_left_usd"]) == Decimal(10) - spent
