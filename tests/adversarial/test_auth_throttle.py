"""Guessed keys against a real gateway: throttled per source and principal, never the owner.

Clients connect from distinct loopback addresses (127.0.0.2, 127.0.0.3 …), so
"source" is the real socket peer the gateway sees.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.gateway import ADMIN_KEY, ThreadedGateway, base_config, running_gateway

pytestmark = pytest.mark.integration
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def client(gw: ThreadedGateway, source: str, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(
        base_url=gw.url,
        transport=httpx.HTTPTransport(local_address=source),
        headers=headers,
        timeout=30,
    )


def guess(gw: ThreadedGateway, source: str, secret: str, path: str = "/admin/keys") -> int:
    with client(gw, source, secret) as c:
        resp = c.get(path) if path.startswith("/admin") else c.post(path, json=CHAT)
    if resp.status_code == 429:
        assert int(resp.headers["retry-after"]) >= 1
        assert resp.json()["error"]["code"] == "auth_throttled"
    assert secret not in resp.text
    return resp.status_code


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[ThreadedGateway]:
    with running_gateway(base_config(f"sqlite:///{tmp_path}/ph.db", tmp_path)) as gw:
        yield gw


def test_guessing_from_one_source_is_throttled_but_the_right_key_always_gets_in(
    gateway: ThreadedGateway,
) -> None:
    key = gateway.create_key()
    codes = [guess(gateway, "127.0.0.2", f"wrong-admin-key-{i}") for i in range(30)]
    assert codes == [401] * 10 + [429] * 20  # the default: 10 free failures per window
    # The throttled source still gets in with a right key, on /admin and on /v1.
    with client(gateway, "127.0.0.2", ADMIN_KEY) as c:
        assert c.get("/admin/keys").status_code == 200
    with client(gateway, "127.0.0.2", key) as c:
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200
    # The throttle spans routes: a wrong key on /v1 from that source is refused as well.
    assert guess(gateway, "127.0.0.2", "ph-" + "z" * 40, "/v1/chat/completions") == 429
    # Another source guessing another principal is not affected …
    assert guess(gateway, "127.0.0.3", "ph-" + "y" * 40) == 401
    # … but the principal under attack (the configured admin key) is, from anywhere.
    assert guess(gateway, "127.0.0.3", "another-admin-guess") == 429
    with client(gateway, "127.0.0.3", ADMIN_KEY) as c:
        assert c.get("/admin/keys").status_code == 200
        metrics = c.get("/metrics").text
    assert 'pilothouse_auth_failures_total{outcome="unauthorized"} 11.0' in metrics
    assert 'pilothouse_auth_failures_total{outcome="throttled"} 22.0' in metrics


def test_a_known_key_prefix_is_throttled_across_sources(tmp_path: Path) -> None:
    cfg = base_config(
        f"sqlite:///{tmp_path}/ph.db", tmp_path, server={"auth_throttle": {"max_failures": 3}}
    )
    with running_gateway(cfg) as gw:
        key = gw.create_key()
        prefix = key[:10]
        wrong = [prefix + "x" * 30 + str(i) for i in range(6)]
        codes = [
            guess(gw, f"127.0.0.{10 + i}", w, "/v1/chat/completions") for i, w in enumerate(wrong)
        ]
        assert codes == [401] * 3 + [429] * 3
        with client(gw, "127.0.0.20", key) as c:
            assert c.post("/v1/chat/completions", json=CHAT).status_code == 200


def sign_in(c: httpx.Client, secret: str) -> httpx.Response:
    form = c.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    return c.post(
        "/console/login",
        data={"csrf_token": token.group(1), "admin_key": secret},
        headers={"origin": str(c.base_url).rstrip("/")},
    )


def test_an_attacker_cannot_lock_the_real_admin_out_of_the_console(
    gateway: ThreadedGateway,
) -> None:
    with client(gateway, "127.0.0.2") as attacker:
        codes = [sign_in(attacker, f"guess-{i}").status_code for i in range(12)]
        assert codes == [401] * 10 + [429] * 2
        refused = sign_in(attacker, "guess-again")
        assert refused.status_code == 429 and "Too many failed sign-ins" in refused.text
    with client(gateway, "127.0.0.3") as admin:
        signed_in = sign_in(admin, ADMIN_KEY)
        assert signed_in.status_code == 303
        assert admin.get("/console/requests").status_code == 200
    with client(gateway, "127.0.0.2") as same_source:  # even from the attacker's address
        assert sign_in(same_source, ADMIN_KEY).status_code == 303


def test_replicas_share_the_counts_through_redis(
    tmp_path: Path, postgres_url: str, redis_url: str, redis_prefix: str
) -> None:
    cfg = base_config(
        postgres_url,
        tmp_path,
        redis={"url": redis_url, "prefix": redis_prefix},
        server={"auth_throttle": {"max_failures": 4}},
    )
    with running_gateway(cfg) as one, running_gateway(cfg) as two:
        key = one.create_key()
        codes = [guess(gw, "127.0.0.2", f"guess-{i}") for i, gw in enumerate([one, two] * 3)]
        assert codes == [401] * 4 + [429] * 2
        with client(two, "127.0.0.2", ADMIN_KEY) as c:
            assert c.get("/admin/keys").status_code == 200
        with client(one, "127.0.0.2", key) as c:
            assert c.post("/v1/chat/completions", json=CHAT).status_code == 200
