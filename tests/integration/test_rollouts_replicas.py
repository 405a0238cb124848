"""Two gateway processes sharing PostgreSQL and Redis run one rollout.

Assignment is the same on both (sticky), the canary share is what was asked
for, and a failing candidate is rolled back once by whichever replica wins,
with one audit row and one webhook call, after which both serve the baseline.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.gateway import ADMIN_KEY, ProcessGateway, base_config, free_port, write_config
from tests.support.receivers import http_sink

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def config(store_url: str, tmp: Path, redis_url: str, prefix: str, hook: str) -> dict[str, Any]:
    return base_config(
        store_url,
        tmp,
        redis={"url": redis_url, "prefix": prefix},
        providers={
            "chaos": {"type": "chaos"},
            "chaos-next": {"type": "chaos", "reply": "candidate"},
            "chaos-bad": {"type": "chaos", "error_rate": 1.0},
        },
        models={
            "chat": {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}]},
            "chat-next": {"targets": [{"provider": "chaos-next", "model": "gpt-4o"}]},
            "chat-bad": {"targets": [{"provider": "chaos-bad", "model": "gpt-4o"}]},
        },
        slo={"webhook": {"url": hook, "max_attempts": 3}},
        rollouts={
            "evaluate_interval_s": 0.05,  # both replicas evaluate all the time: a race to win
            "defaults": {
                "min_samples": 20,
                "alpha": 0.05,
                "guards": [{"metric": "error_rate", "max_increase": 0.05}],
            },
        },
    )


@contextlib.contextmanager
def replicas(cfg: dict[str, Any], tmp: Path) -> Iterator[list[ProcessGateway]]:
    path = write_config(tmp / "pilothouse.yaml", cfg)
    gateways = [ProcessGateway(path, free_port(), {}) for _ in range(2)]
    try:
        for gw in gateways:
            gw.start()
        yield gateways
    finally:
        for gw in gateways:
            gw.stop()


def chat(client: httpx.Client, gw: ProcessGateway, key: str, user: str) -> httpx.Response:
    resp = client.post(
        gw.url + "/v1/chat/completions",
        headers={
            "Authorization": f"Bearer {key}",
            "x-pilothouse-metadata": orjson.dumps({"user": user}).decode(),
        },
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert resp.status_code == 200, resp.text
    return resp


def serving(client: httpx.Client, gw: ProcessGateway, key: str, rollout_id: str | None) -> None:
    """Block until ``gw`` routes by ``rollout_id`` (None: by no rollout), bounded by requests."""
    for n in range(2000):
        seen = chat(client, gw, key, f"sync-{n}").headers.get("x-pilothouse-rollout")
        if seen == rollout_id:
            return
    raise AssertionError(f"{gw.url} never served with rollout {rollout_id}")


def test_two_replicas_share_assignment_and_roll_back_a_failing_candidate_once(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    with http_sink("/hook") as (hook_url, received):
        cfg = config(postgres_url, tmp_path, redis_url, redis_prefix, hook_url + "/hook")
        with replicas(cfg, tmp_path) as gws, httpx.Client(timeout=30) as client:
            key = client.post(gws[0].url + "/admin/keys", headers=ADMIN, json={"name": "app"})
            key = key.json()["key"]
            canary = client.post(
                gws[0].url + "/admin/rollouts",
                headers=ADMIN,
                json={
                    "alias": "chat",
                    "candidate_alias": "chat-next",
                    "mode": "canary",
                    "percent": 20,
                    "sticky": "user",
                },
            ).json()
            for gw in gws:
                serving(client, gw, key, canary["id"])

            users = 600
            arm_of = {}
            for i in range(users):
                resp = chat(client, gws[i % 2], key, f"user-{i}")
                arm_of[i] = resp.headers["x-pilothouse-arm"]
                served = resp.headers["x-pilothouse-target"]
                assert served == (
                    "chaos-next/gpt-4o" if arm_of[i] == "candidate" else "chaos/gpt-4o-mini"
                )
            share = sum(a == "candidate" for a in arm_of.values()) / users
            assert abs(share - 0.2) <= 3 * math.sqrt(0.2 * 0.8 / users)
            for i in range(0, users, 5):  # the other replica, and again on the same one
                for gw in (gws[(i + 1) % 2], gws[i % 2]):
                    assert (
                        chat(client, gw, key, f"user-{i}").headers["x-pilothouse-arm"] == arm_of[i]
                    )

            done = client.post(
                gws[1].url + f"/admin/rollouts/{canary['id']}/rollback", headers=ADMIN
            )
            assert done.status_code == 200 and done.json()["state"] == "rolled_back"
            bad = client.post(
                gws[1].url + "/admin/rollouts",
                headers=ADMIN,
                json={"alias": "chat", "candidate_alias": "chat-bad", "percent": 50},
            )
            assert bad.status_code == 201, bad.text
            bad_id = bad.json()["id"]
            second = client.post(
                gws[0].url + "/admin/rollouts",
                headers=ADMIN,
                json={"alias": "chat", "candidate_alias": "chat-next"},
            )
            assert second.status_code == 409
            for gw in gws:
                serving(client, gw, key, bad_id)
            n = 0
            while not received.arrived.is_set() and n < 4000:  # until the alert, bounded
                resp = chat(client, gws[n % 2], key, f"bad-{n}")
                assert resp.headers["x-pilothouse-target"] == "chaos/gpt-4o-mini"  # fallback
                n += 1
            assert received.arrived.wait(30), "no rollback alert"
            status = client.get(gws[0].url + f"/admin/rollouts/{bad_id}", headers=ADMIN).json()
            assert status["state"] == "rolled_back" and status["ended_by"] == "rollout-guard"
            assert status["verdict"]["guard"] == "error_rate"
            cand = status["verdict"]["arms"]["candidate"]
            assert cand["requests"] >= 20 and cand["errors"] == cand["requests"]
            assert status["verdict"]["arms"]["baseline"]["requests"] >= 20

            for gw in gws:
                serving(client, gw, key, None)
                for i in range(20):
                    resp = chat(client, gw, key, f"after-{i}")
                    assert "x-pilothouse-arm" not in resp.headers
                    assert resp.headers["x-pilothouse-target"] == "chaos/gpt-4o-mini"
            audit = client.get(
                gws[1].url + "/admin/audit", headers=ADMIN, params={"action": "rollout.rollback"}
            ).json()["data"]
            assert [(a["target"], a["actor"]) for a in audit] == [
                (canary["id"], "bootstrap"),
                (bad_id, "rollout-guard"),
            ]
            assert audit[1]["details"]["guard"] == "error_rate"
    alerts = [orjson.loads(b) for b in received.bodies]
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["kind"] == "rollout_rollback" and alert["status"] == "firing"
    assert alert["labels"]["guard"] == "error_rate" and alert["labels"]["rollout"] == bad_id
    assert alert["values"]["candidate_value"] == 1.0 and alert["values"]["baseline_value"] == 0.0
    assert alert["values"]["statistic"] > alert["values"]["boundary"] == 0.05
