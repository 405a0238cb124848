"""Teams and users as entities: CRUD, audit, roles, and their limits on real requests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pilothouse.limits.money import pico_to_str
from tests.support.gateway import ThreadedGateway, base_config, running_gateway
from tests.support.ledger import usage_rows

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "the quick brown fox"}]
# The chaos upstream always reports 10 in + 20 out tokens: 10 + 40 = 50 pico-USD x 1e6.
CHAOS = {"type": "chaos", "reported_prompt_tokens": 10, "reported_completion_tokens": 20}
PRICES = {"gpt-4o-mini": {"input": "1.0", "output": "2.0"}}  # USD per 1M tokens
COST_PICO = 50 * 10**6


@pytest.fixture
def gateway(store_url: str, tmp_path: Path) -> Iterator[ThreadedGateway]:
    config = base_config(
        store_url,
        tmp_path,
        providers={"chaos": CHAOS},
        models={
            "chat": {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}]},
            "other": {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}]},
        },
        prices=PRICES,
    )
    with running_gateway(config) as gw:
        yield gw


def chat(gw: ThreadedGateway, key: str, model: str = "chat") -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": model, "messages": MESSAGES, "max_tokens": 20},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )


def create(gw: ThreadedGateway, path: str, **spec: Any) -> dict[str, Any]:
    with gw.admin() as admin:
        resp = admin.post(path, json=spec)
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def new_key(gw: ThreadedGateway, **spec: Any) -> tuple[str, str]:
    body = create(gw, "/admin/keys", name=spec.pop("name", "k"), **spec)
    return str(body["id"]), str(body["key"])


def error(resp: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = resp.json()["error"]
    return body


def test_team_and_user_crud_validation_and_audit(gateway: ThreadedGateway) -> None:
    team = create(gateway, "/admin/teams", name="search", budget_usd="10", rpm=100, models=["chat"])
    assert team["id"].startswith("team_") and team["budget_usd"] == "10"
    assert team["spend_usd"] == "0" and team["budget_left_usd"] == "10"
    other = create(gateway, "/admin/teams", name="ads")
    user = create(gateway, "/admin/users", name="ana", team_id=team["id"], tpm=5000)
    assert user["team_id"] == team["id"]
    with gateway.admin() as admin:
        dup = admin.post("/admin/teams", json={"name": "search"})
        assert dup.status_code == 409 and "already exists" in error(dup)["message"]
        bad = admin.post("/admin/teams", json={"name": "x", "budget_usd": "lots"})
        assert bad.status_code == 400 and error(bad)["param"] == "budget_usd"
        assert admin.post("/admin/teams", json={"name": "y", "owner": 1}).status_code == 400
        assert (
            admin.post("/admin/users", json={"name": "z", "team_id": "team_nope"}).status_code
            == 400
        )
        # A key's user must belong to the key's team; a user's team is the key's by default.
        wrong = admin.post(
            "/admin/keys", json={"name": "k", "team_id": other["id"], "user_id": user["id"]}
        )
        assert wrong.status_code == 400 and error(wrong)["param"] == "user_id", wrong.text
        missing = admin.post("/admin/keys", json={"name": "k", "team_id": "team_missing"})
        assert missing.status_code == 400 and error(missing)["param"] == "team_id"
        key = admin.post("/admin/keys", json={"name": "k", "user_id": user["id"]}).json()
        assert (key["team_id"], key["user_id"]) == (team["id"], user["id"])

        listed = admin.get("/admin/teams").json()["data"]
        assert [t["name"] for t in listed] == ["search", "ads"]
        members = admin.get("/admin/users", params={"team_id": team["id"]}).json()["data"]
        assert [u["name"] for u in members] == ["ana"]
        patched = admin.patch(f"/admin/teams/{team['id']}", json={"budget_usd": "2.5", "rpm": None})
        assert patched.status_code == 200, patched.text
        assert (patched.json()["budget_usd"], patched.json()["rpm"]) == ("2.5", None)
        assert admin.get(f"/admin/teams/{team['id']}").json()["budget_usd"] == "2.5"
        assert admin.get("/admin/teams/team_unknown").status_code == 404
        assert admin.get(f"/admin/users/{team['id']}").status_code == 404  # not a user id

        # In use: a live key and a member. Deleting is refused until both are gone.
        busy = admin.delete(f"/admin/teams/{team['id']}")
        assert busy.status_code == 409 and "1 live key(s) and 1 user(s)" in error(busy)["message"]
        assert admin.delete(f"/admin/keys/{key['id']}").status_code == 200
        assert admin.delete(f"/admin/users/{user['id']}").status_code == 200
        assert admin.delete(f"/admin/teams/{team['id']}").status_code == 200
        assert admin.get(f"/admin/teams/{team['id']}").status_code == 404

        audit = admin.get("/admin/audit").json()["data"]
    actions = [(row["action"], row["target"]) for row in audit]
    for expected in [
        ("team.create", team["id"]),
        ("user.create", user["id"]),
        ("team.update", team["id"]),
        ("user.delete", user["id"]),
        ("team.delete", team["id"]),
    ]:
        assert expected in actions
    update = next(r for r in audit if r["action"] == "team.update")
    assert update["actor"] == "bootstrap"


def test_team_budget_refuses_with_the_scope_named_and_usage_carries_the_ids(
    gateway: ThreadedGateway,
) -> None:
    # The worst case of one request is ~(input bound + 20) tokens x 2 USD/1M; 0.0001 USD
    # admits one at a time and the real cost (50e6 pico-USD) leaves less than a worst case.
    team = create(gateway, "/admin/teams", name="t", budget_usd="0.0001")
    user = create(gateway, "/admin/users", name="u", team_id=team["id"])
    key_a, secret_a = new_key(gateway, name="a", team_id=team["id"], user_id=user["id"])
    key_b, secret_b = new_key(gateway, name="b", team_id=team["id"], budget_usd="100")
    statuses = []
    for secret in [secret_a, secret_b] * 4:
        resp = chat(gateway, secret)
        statuses.append(resp.status_code)
        if resp.status_code != 200:
            assert resp.status_code == 429, resp.text
            assert error(resp)["code"] == "team_budget_exceeded"
            assert "team budget exceeded for team `t`" in error(resp)["message"]
    assert 200 in statuses and 429 in statuses
    rows = usage_rows(gateway)
    assert {r["team_id"] for r in rows} == {team["id"]}
    assert {(r["key_id"], r["user_id"]) for r in rows} == {(key_a, user["id"]), (key_b, None)}
    spent = sum(r["cost_pico"] for r in rows)
    assert spent == statuses.count(200) * COST_PICO <= 10**8
    with gateway.admin() as admin:
        shown = admin.get(f"/admin/teams/{team['id']}").json()
        by_team = admin.get("/admin/usage", params={"group_by": "team"}).json()["data"]
        by_user = admin.get("/admin/usage", params={"group_by": "user"}).json()["data"]
        only_user = admin.get("/admin/usage", params={"user_id": user["id"]}).json()["total"]
        report = admin.get("/admin/reports/costs", params={"by": "team,user"}).json()["data"]
    assert shown["spend_usd"] == pico_to_str(spent)
    assert [(g["team"], g["requests"]) for g in by_team] == [(team["id"], 8)]
    assert sorted((g["user"] or "", g["requests"]) for g in by_user) == [("", 4), (user["id"], 4)]
    assert only_user["requests"] == 4
    named = {(r["team_name"], r["user_name"]) for r in report}
    assert named == {("t", "u"), ("t", None)}


def test_user_limits_and_models_apply_to_every_key_of_the_user(gateway: ThreadedGateway) -> None:
    user = create(gateway, "/admin/users", name="bo", rpm=2, models=["chat"])
    _, first = new_key(gateway, name="one", user_id=user["id"])
    _, second = new_key(gateway, name="two", user_id=user["id"])
    denied = chat(gateway, first, "other")
    assert denied.status_code == 403 and error(denied)["code"] == "user_model_not_allowed"
    assert chat(gateway, first).status_code == 200
    assert chat(gateway, second).status_code == 200
    limited = chat(gateway, first)
    assert limited.status_code == 429, limited.text
    assert error(limited)["code"] == "user_rate_limit_exceeded"
    assert "user `bo`" in error(limited)["message"] and limited.headers["retry-after"]


def test_team_rpm_is_shared_by_the_teams_keys_and_a_key_without_team_is_unaffected(
    gateway: ThreadedGateway,
) -> None:
    team = create(gateway, "/admin/teams", name="small", rpm=3)
    secrets = [new_key(gateway, name=f"k{i}", team_id=team["id"])[1] for i in range(2)]
    _, loner = new_key(gateway, name="loner", rpm=100)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return list(
                await asyncio.gather(
                    *(
                        client.post(
                            gateway.url + "/v1/chat/completions",
                            json={"model": "chat", "messages": MESSAGES, "max_tokens": 20},
                            headers={"Authorization": f"Bearer {secrets[i % 2]}"},
                        )
                        for i in range(10)
                    )
                )
            )

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses].count(200) == 3
    refused = [r for r in responses if r.status_code != 200]
    assert {r.status_code for r in refused} == {429}
    assert {error(r)["code"] for r in refused} == {"team_rate_limit_exceeded"}
    # A key without a team: no team scope, the key's own limits, the same codes as ever.
    assert chat(gateway, loner).status_code == 200
    rows = usage_rows(gateway)
    assert [r["team_id"] for r in rows if r["status"] == 200][-1] is None


def test_a_key_without_a_team_refuses_exactly_as_before(gateway: ThreadedGateway) -> None:
    key_id, secret = new_key(gateway, name="solo", budget_usd="0.00001")
    resp = chat(gateway, secret)
    assert resp.status_code == 429
    assert error(resp)["code"] == "insufficient_quota"
    assert error(resp)["message"].startswith("budget exhausted for key `solo`: 0.00001 USD left")
    (row,) = usage_rows(gateway, key_id=key_id)
    assert (row["team_id"], row["user_id"], row["status"]) == (None, None, 429)


def test_team_changes_apply_at_once_and_keys_move_with_their_user(
    gateway: ThreadedGateway,
) -> None:
    team = create(gateway, "/admin/teams", name="a")
    other = create(gateway, "/admin/teams", name="b", models=["other"])
    user = create(gateway, "/admin/users", name="cy", team_id=team["id"])
    key_id, secret = new_key(gateway, name="k", user_id=user["id"])
    assert chat(gateway, secret).status_code == 200  # team cached in the gateway now
    with gateway.admin() as admin:
        assert (
            admin.patch(f"/admin/teams/{team['id']}", json={"models": ["other"]}).status_code == 200
        )
    refused = chat(gateway, secret)
    assert refused.status_code == 403 and error(refused)["code"] == "team_model_not_allowed"
    with gateway.admin() as admin:
        admin.patch(f"/admin/teams/{team['id']}", json={"models": None})
        moved = admin.patch(f"/admin/users/{user['id']}", json={"team_id": other["id"]})
        assert moved.status_code == 200, moved.text
        key = next(k for k in admin.get("/admin/keys").json()["data"] if k["id"] == key_id)
    assert key["team_id"] == other["id"]
    assert chat(gateway, secret).status_code == 403  # team b allows only `other`
    assert chat(gateway, secret, "other").status_code == 200


@pytest.mark.parametrize(
    ("role", "can_read", "can_write"),
    [("admin", True, True), ("operator", True, False), ("viewer", True, False),
     ("finance", True, False)],
)  # fmt: skip
def test_only_admins_change_teams_and_users(
    gateway: ThreadedGateway, role: str, can_read: bool, can_write: bool
) -> None:
    team = create(gateway, "/admin/teams", name="r")
    _, secret = new_key(gateway, name=f"p-{role}", role=role)
    _, app = new_key(gateway, name="app")
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {secret}"}) as c:
        for path in ("/admin/teams", "/admin/users"):
            assert (c.get(path).status_code == 200) == can_read
            made = c.post(path, json={"name": f"new-{role}"})
            assert made.status_code == (201 if can_write else 403), made.text
        patched = c.patch(f"/admin/teams/{team['id']}", json={"rpm": 5})
        assert patched.status_code == (200 if can_write else 403)
        if not can_write:
            assert error(patched)["code"] == "forbidden_for_role"
        deleted = c.delete(f"/admin/teams/{team['id']}")
        assert deleted.status_code == (200 if can_write else 403)
    plain = httpx.get(gateway.url + "/admin/teams", headers={"Authorization": f"Bearer {app}"})
    assert plain.status_code == 403
    assert httpx.get(gateway.url + "/admin/teams").status_code == 401
