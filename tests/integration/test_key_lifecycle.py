"""Key lifecycle: update in place, rotation with a grace period, expiry, spend in listings."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.gateway import ADMIN_KEY, ThreadedGateway, base_config, running_gateway

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "the quick brown fox"}]


@pytest.fixture
def gateway(store_url: str, tmp_path: Path) -> Iterator[ThreadedGateway]:
    config = base_config(
        store_url,
        tmp_path,
        models={
            "chat": {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}]},
            "other": {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}]},
        },
        prices={"gpt-4o-mini": {"input": 1.0, "output": 2.0}},
    )
    with running_gateway(config) as gw:
        yield gw


def chat(gw: ThreadedGateway, key: str, model: str = "chat") -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": model, "messages": MESSAGES, "max_tokens": 8},
        headers={"Authorization": f"Bearer {key}"},
    )


def key_id_of(gw: ThreadedGateway, name: str) -> str:
    with gw.admin() as admin:
        (row,) = [k for k in admin.get("/admin/keys").json()["data"] if k["name"] == name]
    return str(row["id"])


def test_update_takes_effect_at_once_and_is_audited(gateway: ThreadedGateway) -> None:
    secret = gateway.create_key(name="app", models=["chat"], rpm=100)
    key_id = key_id_of(gateway, "app")
    assert chat(gateway, secret).status_code == 200  # cached in the gateway now
    assert chat(gateway, secret, "other").status_code == 403

    with gateway.admin() as admin:
        resp = admin.patch(
            f"/admin/keys/{key_id}",
            json={"models": ["chat", "other"], "rpm": 1, "metadata": {"team": "search"}},
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["models"] == ["chat", "other"] and body["rpm"] == 1
        assert "key" not in body and "key_hash" not in body

        assert chat(gateway, secret, "other").status_code == 200  # the cached copy was dropped
        assert chat(gateway, secret).status_code == 429  # rpm 1 now applies

        audit = admin.get("/admin/audit", params={"action": "key.update"}).json()["data"]
        assert [row["target"] for row in audit] == [key_id]
        assert "search" not in str(audit)  # metadata values are not copied into the audit log


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"rpm": -1}, "rpm"),
        ({"budget_usd": "NaN"}, "budget_usd"),
        ({"scopes": ["admin"]}, "scopes"),
        ({"role": "admin"}, "role"),
        ({"expires_at": "next tuesday"}, "expires_at"),
        ({"nope": 1}, "nope"),
    ],
)
def test_bad_patches_are_precise_400s(
    gateway: ThreadedGateway, patch: dict[str, object], param: str
) -> None:
    gateway.create_key(name="bad")
    with gateway.admin() as admin:
        resp = admin.patch(f"/admin/keys/{key_id_of(gateway, 'bad')}", json=patch)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == param


def test_patch_of_unknown_or_revoked_key(gateway: ThreadedGateway) -> None:
    gateway.create_key(name="gone")
    key_id = key_id_of(gateway, "gone")
    with gateway.admin() as admin:
        assert admin.patch("/admin/keys/key_nosuch", json={"rpm": 5}).status_code == 404
        assert admin.delete(f"/admin/keys/{key_id}").status_code == 200
        assert admin.patch(f"/admin/keys/{key_id}", json={"rpm": 5}).status_code == 400


def test_rotation_keeps_the_old_secret_for_the_grace_period_only(
    gateway: ThreadedGateway,
) -> None:
    old = gateway.create_key(name="rot")
    key_id = key_id_of(gateway, "rot")
    with gateway.admin() as admin:
        resp = admin.post(f"/admin/keys/{key_id}/rotate", json={"grace_s": 3600})
        assert resp.status_code == 201, resp.text
        new = resp.json()["key"]
        assert new != old and resp.json()["id"] == key_id

        assert chat(gateway, new).status_code == 200
        assert chat(gateway, old).status_code == 200  # within the grace period

        # Rotating again with no grace ends the old (and the first) secret at once.
        newest = admin.post(f"/admin/keys/{key_id}/rotate", json={"grace_s": 0}).json()["key"]
    assert chat(gateway, newest).status_code == 200
    for stale in (old, new):
        resp = chat(gateway, stale)
        assert resp.status_code == 401 and resp.json()["error"]["code"] in (
            "invalid_api_key",
            "expired_api_key",
        )


def test_rotated_secret_stops_when_its_grace_ends(gateway: ThreadedGateway) -> None:
    old = gateway.create_key(name="grace")
    key_id = key_id_of(gateway, "grace")
    with gateway.admin() as admin:
        new = admin.post(f"/admin/keys/{key_id}/rotate", json={"grace_s": 1}).json()["key"]
    assert chat(gateway, old).status_code == 200  # cached now, with its grace end
    deadline = time.monotonic() + 30
    while (resp := chat(gateway, old)).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)  # polling an observable condition with a bounded deadline
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "expired_api_key"
    assert "rotated" in resp.json()["error"]["message"]
    assert chat(gateway, new).status_code == 200


def test_expired_key_is_a_401_saying_so(gateway: ThreadedGateway) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    secret = gateway.create_key(name="exp", expires_at=future)
    assert chat(gateway, secret).status_code == 200
    with gateway.admin() as admin:
        assert (
            admin.patch(
                f"/admin/keys/{key_id_of(gateway, 'exp')}", json={"expires_at": past}
            ).status_code
            == 200
        )
    resp = chat(gateway, secret)
    assert resp.status_code == 401
    error = resp.json()["error"]
    assert error["code"] == "expired_api_key" and "expired at" in error["message"]


def test_listing_shows_spend_budget_left_and_last_use(gateway: ThreadedGateway) -> None:
    secret = gateway.create_key(name="spender", budget_usd="1", budget_period="month")
    gateway.create_key(name="idle")
    assert chat(gateway, secret).status_code == 200
    with httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as admin:
        rows = {k["name"]: k for k in admin.get("/admin/keys").json()["data"]}
    spender, idle = rows["spender"], rows["idle"]
    spent = float(spender["spend_usd"])
    assert spent > 0
    assert float(spender["budget_left_usd"]) == pytest.approx(1 - spent)
    assert spender["last_used_at"] is not None
    assert idle["spend_usd"] == "0" or float(idle["spend_usd"]) == 0
    assert idle["last_used_at"] is None and idle["budget_left_usd"] is None
