"""Team budgets and team changes across replicas: `pilothouse serve` processes on PostgreSQL
and Redis, two keys of one team, the chaos provider with a fixed usage so each cost is known.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pilothouse.limits.scopes import ScopeStore
from pilothouse.store.db import create_engine
from tests.adversarial.test_budget import replicas
from tests.support.gateway import ADMIN_KEY, base_config, running_gateway
from tests.support.ledger import stored_rows

pytestmark = pytest.mark.integration
MESSAGES = [{"role": "user", "content": "spend the team's money"}]
PRICES = {"gpt-4o-mini": {"input": "1.0", "output": "1.0"}}  # 1 USD per 1M tokens
# Every answer reports 10 + 20 tokens: exactly 30e6 pico-USD, far below its worst case.
CHAOS = {
    "type": "chaos",
    "reported_prompt_tokens": 10,
    "reported_completion_tokens": 20,
    "latency_ms": {"dist": "uniform", "min": 5, "max": 40},
}
COST_PICO = 30 * 10**6
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def admin_post(url: str, path: str, **spec: Any) -> dict[str, Any]:
    resp = httpx.post(url + path, json=spec, headers=ADMIN)
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def fire(targets: list[tuple[str, str]], n: int) -> list[httpx.Response]:
    """``n`` concurrent chats, round-robin over (gateway url, key) pairs."""
    async with httpx.AsyncClient(timeout=120) as client:

        async def one(i: int) -> httpx.Response:
            url, key = targets[i % len(targets)]
            return await client.post(
                url + "/v1/chat/completions",
                json={"model": "chat", "messages": MESSAGES, "max_tokens": 100},
                headers={"Authorization": f"Bearer {key}"},
            )

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def check_no_overshoot(responses: list[httpx.Response], rows: list[dict[str, Any]]) -> None:
    budget = 10**9
    granted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert granted and refused, [r.status_code for r in responses]
    assert {r.status_code for r in refused} == {429}
    assert {r.json()["error"]["code"] for r in refused} == {"team_budget_exceeded"}
    assert len(rows) == len(responses)
    spent = sum(r["cost_pico"] for r in rows)
    assert spent == len(granted) * COST_PICO
    assert spent <= budget, f"the team spent {spent / budget:.2f}x its budget"


def test_fifty_concurrent_requests_from_two_keys_on_two_replicas_cannot_overshoot_the_team(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    config = base_config(
        postgres_url,
        tmp_path,
        prices=PRICES,
        providers={"chaos": CHAOS},
        redis={"url": redis_url, "prefix": redis_prefix},
    )
    with replicas(config, tmp_path, 2) as (a, b):
        team = admin_post(a.url, "/admin/teams", name="shared", budget_usd="0.001")
        keys = [admin_post(a.url, "/admin/keys", name=f"k{i}", team_id=team["id"]) for i in (0, 1)]
        targets = [(a.url, keys[0]["key"]), (b.url, keys[1]["key"]),
                   (a.url, keys[1]["key"]), (b.url, keys[0]["key"])]  # fmt: skip
        responses = asyncio.run(fire(targets, 50))
        assert httpx.get(a.url + "/admin/usage", headers=ADMIN).status_code == 200
        assert httpx.get(b.url + "/admin/usage", headers=ADMIN).status_code == 200  # flushed
        rows = stored_rows(postgres_url, team_id=team["id"])
    check_no_overshoot(responses, rows)
    assert {r["key_id"] for r in rows} == {keys[0]["id"], keys[1]["id"]}


def test_the_in_process_backend_is_as_atomic(store_url: str, tmp_path: Path) -> None:
    config = base_config(store_url, tmp_path, prices=PRICES, providers={"chaos": CHAOS})
    with running_gateway(config) as gw:
        team = admin_post(gw.url, "/admin/teams", name="shared", budget_usd="0.001")
        keys = [admin_post(gw.url, "/admin/keys", name=f"k{i}", team_id=team["id"]) for i in (0, 1)]
        responses = asyncio.run(fire([(gw.url, k["key"]) for k in keys], 50))
        assert httpx.get(gw.url + "/admin/usage", headers=ADMIN).status_code == 200
        rows = stored_rows(store_url, team_id=team["id"])
    check_no_overshoot(responses, rows)


def chat_status(url: str, key: str) -> tuple[int, str | None]:
    resp = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "chat", "messages": MESSAGES, "max_tokens": 5},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    return resp.status_code, (resp.json().get("error") or {}).get("code")


def test_a_team_patch_on_one_replica_reaches_the_other(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    config = base_config(
        postgres_url,
        tmp_path,
        prices=PRICES,
        providers={"chaos": CHAOS},
        redis={"url": redis_url, "prefix": redis_prefix},
    )
    with replicas(config, tmp_path, 2) as (a, b):
        team = admin_post(a.url, "/admin/teams", name="t")
        user = admin_post(a.url, "/admin/users", name="u", team_id=team["id"])
        key = admin_post(a.url, "/admin/keys", name="k", user_id=user["id"])["key"]
        assert chat_status(b.url, key) == (200, None)  # b has the team and user cached now
        patched = httpx.patch(
            a.url + f"/admin/teams/{team['id']}", json={"models": ["nothing"]}, headers=ADMIN
        )
        assert patched.status_code == 200, patched.text
        seen = [chat_status(b.url, key) for _ in range(1)]
        for _ in range(200):  # the pub/sub message races this loop; bounded
            if seen[-1][0] != 200:
                break
            seen.append(chat_status(b.url, key))
        assert seen[-1] == (403, "team_model_not_allowed"), seen[-5:]
        httpx.patch(a.url + f"/admin/teams/{team['id']}", json={"models": None}, headers=ADMIN)
        httpx.patch(a.url + f"/admin/users/{user['id']}", json={"rpm": 1}, headers=ADMIN)
        statuses = [chat_status(b.url, key) for _ in range(200)]
        assert (429, "user_rate_limit_exceeded") in statuses  # the user's new RPM holds on b


def test_a_change_made_in_the_store_reaches_a_gateway_without_redis(tmp_path: Path) -> None:
    """The CLI writes the store directly: the gateway's updated_at poll picks it up."""
    store = f"sqlite:///{tmp_path}/ph.db"
    config = base_config(store, tmp_path, prices=PRICES, providers={"chaos": CHAOS})
    with running_gateway(config) as gw:
        team = admin_post(gw.url, "/admin/teams", name="t")
        key = admin_post(gw.url, "/admin/keys", name="k", team_id=team["id"])["key"]
        assert chat_status(gw.url, key) == (200, None)

        async def patch() -> None:
            engine = create_engine(store)
            try:
                await ScopeStore(engine).update("team", team["id"], {"budget_usd": "0"})
            finally:
                await engine.dispose()

        asyncio.run(patch())
        deadline = time.monotonic() + 30
        while (status := chat_status(gw.url, key)) == (200, None):
            assert time.monotonic() < deadline, "the gateway never saw the team's new budget"
            time.sleep(0.1)  # polling interval, not synchronisation
        assert status == (429, "team_budget_exceeded")
