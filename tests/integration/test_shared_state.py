"""Limits, budgets and revocations hold across replicas that share Redis and a store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import (
    ADMIN_KEY,
    ProcessGateway,
    base_config,
    free_port,
    running_gateway,
    write_config,
)
from tests.support.ledger import usage_rows

pytestmark = pytest.mark.integration
MESSAGES = [{"role": "user", "content": "count my money"}]
PRICES = {"gpt-4o-mini": {"input": "1.0", "output": "1.0"}}  # 1 USD per 1M tokens


def shared_config(
    store_url: str, tmp_path: Path, redis_url: str | None, prefix: str
) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "prices": PRICES,
        "models": {
            "chat": {
                "targets": [{"provider": "chaos", "model": "gpt-4o-mini", "max_output_tokens": 100}]
            }
        },
        "providers": {
            "chaos": {"type": "chaos", "latency_ms": {"dist": "uniform", "min": 1, "max": 20}}
        },
    }
    if redis_url:
        extra["redis"] = {"url": redis_url, "prefix": prefix}
    return base_config(store_url, tmp_path, **extra)


@contextlib.contextmanager
def two_replicas(config: dict[str, Any], tmp_path: Path) -> Iterator[list[ProcessGateway]]:
    path = write_config(tmp_path / "pilothouse.yaml", config)
    gateways = [ProcessGateway(path, free_port(), {}) for _ in range(2)]
    try:
        for gw in gateways:
            gw.start()
        yield gateways
    finally:
        for gw in gateways:
            gw.stop()


def create_key(url: str, **spec: Any) -> tuple[str, str]:
    resp = httpx.post(
        url + "/admin/keys",
        json={"name": "t", **spec},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["id"], resp.json()["key"]


async def fire(urls: list[str], key: str, n: int, **body: Any) -> list[int]:
    async with httpx.AsyncClient(timeout=60) as client:

        async def one(i: int) -> int:
            resp = await client.post(
                urls[i % len(urls)] + "/v1/chat/completions",
                json={"model": "chat", "messages": MESSAGES, **body},
                headers={"Authorization": f"Bearer {key}"},
            )
            return resp.status_code

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def test_two_replicas_enforce_one_rpm_limit(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    config = shared_config(postgres_url, tmp_path, redis_url, redis_prefix)
    with two_replicas(config, tmp_path) as (a, b):
        _id, key = create_key(a.url, rpm=10)
        statuses = asyncio.run(fire([a.url, b.url], key, 30))
    assert statuses.count(200) == 10, statuses
    assert statuses.count(429) == 20


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_fifty_concurrent_requests_cannot_overshoot_budget(
    backend: str,
    store_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    redis_prefix: str,
) -> None:
    redis = request.getfixturevalue("redis_url") if backend == "redis" else None
    config = shared_config(store_url, tmp_path, redis, redis_prefix)
    with running_gateway(config) as gw:
        # Each request: worst case (16+8+... bytes in, 100 out) ~= 150 tokens => 0.00015 USD.
        # A 0.001 USD budget admits only a handful at a time; real cost is far lower.
        key_id, key = create_key(gw.url, budget_usd="0.001")
        statuses = asyncio.run(fire([gw.url], key, 50, max_tokens=100))
        rows = usage_rows(gw, key_id=key_id)
    spent = sum(r["cost_pico"] for r in rows)
    assert 200 in statuses and 429 in statuses
    assert spent <= 10**9, f"spent {spent} pico-USD of a 1e9 budget"
    assert len(rows) == 50


def test_revocation_reaches_the_other_replica(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    config = shared_config(postgres_url, tmp_path, redis_url, redis_prefix)
    with two_replicas(config, tmp_path) as (a, b):
        key_id, key = create_key(a.url)
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.get(b.url + "/v1/models", headers=headers).status_code == 200
        revoked = httpx.delete(
            a.url + f"/admin/keys/{key_id}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert revoked.status_code == 200 and revoked.json()["revoked"] is True
        statuses = []
        with httpx.Client() as client:
            for _ in range(200):  # the pub/sub message races this loop; bounded
                status = client.get(b.url + "/v1/models", headers=headers).status_code
                statuses.append(status)
                if status == 401:
                    break
        assert statuses[-1] == 401


def test_a_key_patch_and_rotation_reach_the_other_replica(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """PATCH /admin/keys/{id} and rotation on one replica apply on the other (issue 14)."""
    config = shared_config(postgres_url, tmp_path, redis_url, redis_prefix)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with two_replicas(config, tmp_path) as (a, b):
        key_id, key = create_key(a.url)
        body = {"model": "chat", "messages": MESSAGES}

        def on_b(secret: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {secret}"}
            return httpx.post(b.url + "/v1/chat/completions", json=body, headers=headers)

        assert on_b(key).status_code == 200  # b has the key cached now
        patched = httpx.patch(
            a.url + f"/admin/keys/{key_id}", json={"models": ["none"]}, headers=admin
        )
        assert patched.status_code == 200, patched.text
        statuses = [on_b(key).status_code]
        for _ in range(200):  # the pub/sub message races this loop; bounded
            if statuses[-1] != 200:
                break
            statuses.append(on_b(key).status_code)
        assert statuses[-1] == 403, statuses[-5:]

        httpx.patch(a.url + f"/admin/keys/{key_id}", json={"models": None}, headers=admin)
        rotated = httpx.post(
            a.url + f"/admin/keys/{key_id}/rotate", json={"grace_s": 0}, headers=admin
        )
        assert rotated.status_code == 201, rotated.text
        assert on_b(rotated.json()["key"]).status_code == 200
        old = [on_b(key).status_code]
        for _ in range(200):  # bounded, as above
            if old[-1] == 401:
                break
            old.append(on_b(key).status_code)
        assert old[-1] == 401, old[-5:]


def test_key_revoked_in_store_without_redis_stops_working(tmp_path: Path) -> None:
    config = base_config(f"sqlite:///{tmp_path}/ph.db", tmp_path)
    with running_gateway(config) as gw:
        key_id, key = create_key(gw.url)
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.get(gw.url + "/v1/models", headers=headers).status_code == 200
        httpx.delete(
            gw.url + f"/admin/keys/{key_id}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert httpx.get(gw.url + "/v1/models", headers=headers).status_code == 401
        listed = httpx.get(gw.url + "/admin/keys", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert key_id not in [k["id"] for k in listed.json()["data"]]
        assert "key_hash" not in listed.text and key not in listed.text


def test_workers_share_limits_and_metrics(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    config = shared_config(postgres_url, tmp_path, redis_url, redis_prefix)
    path = write_config(tmp_path / "pilothouse.yaml", config)
    port = free_port()
    gw = ProcessGateway(path, port, {})
    try:  # started inside the try: a timed-out start must not leave the workers behind
        gw.start_command(["serve", "--config", str(path), "--port", str(port), "--workers", "2"])
        _id, key = create_key(gw.url, rpm=8)
        statuses = asyncio.run(fire([gw.url], key, 12))
        scraper = create_key(gw.url, scopes=["metrics"])[1]
        text = httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {scraper}"}).text
    finally:
        gw.stop()
    assert statuses.count(200) == 8 and statuses.count(429) == 4
    served = [
        line
        for line in text.splitlines()
        if line.startswith('pilothouse_requests_total{alias="chat"')
    ]
    total = sum(float(line.rsplit(" ", 1)[1]) for line in served)
    assert total == 12, served
