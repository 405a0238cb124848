"""Budgets under attack: killed replicas, huge budgets, content that reserves nothing.

Everything goes through real gateways (`pilothouse serve` processes on PostgreSQL
and Redis, or a threaded gateway) with the chaos provider as upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
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
MESSAGES = [{"role": "user", "content": "hold my budget"}]
PRICES = {"gpt-4o-mini": {"input": "1.0", "output": "1.0"}}  # 1 USD per 1M tokens


def create_key(url: str, **spec: Any) -> tuple[str, str]:
    resp = httpx.post(
        url + "/admin/keys",
        json={"name": "adv", **spec},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["id"], resp.json()["key"]


def chat(url: str, key: str, model: str = "chat", **body: Any) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        json={"model": model, "messages": MESSAGES, **body},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )


@contextlib.contextmanager
def replicas(config: dict[str, Any], tmp_path: Path, n: int) -> Iterator[list[ProcessGateway]]:
    path = write_config(tmp_path / "pilothouse.yaml", config)
    gateways = [ProcessGateway(path, free_port(), {}) for _ in range(n)]
    try:
        for gw in gateways:
            gw.start()
        yield gateways
    finally:
        for gw in gateways:
            gw.stop()


async def hold_streams(url: str, key: str, n: int, ready: asyncio.Event) -> None:
    """Open ``n`` streams that stall after their first chunk; set ``ready`` once all are open."""
    opened = 0
    async with httpx.AsyncClient(timeout=600) as client:

        async def one() -> None:
            nonlocal opened
            body = {"model": "slow", "messages": MESSAGES, "stream": True}
            headers = {"Authorization": f"Bearer {key}"}
            with contextlib.suppress(httpx.HTTPError):
                async with client.stream(
                    "POST", url + "/v1/chat/completions", json=body, headers=headers
                ) as resp:
                    assert resp.status_code == 200, await resp.aread()
                    first = True
                    async for _chunk in resp.aiter_bytes():  # ends when the replica dies
                        if first:
                            first, opened = False, opened + 1
                            if opened == n:
                                ready.set()

        await asyncio.gather(*(one() for _ in range(n)))


def test_a_killed_replicas_reservations_lapse_and_the_other_regains_the_budget(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    lease_s = 1.0
    config = base_config(
        postgres_url,
        tmp_path,
        prices=PRICES,
        redis={"url": redis_url, "prefix": redis_prefix},
        limits={"reservation_lease_s": lease_s},
        providers={
            "chaos": {"type": "chaos"},
            "stall": {"type": "chaos", "stall_rate": 1.0, "stall_s": 600},
        },
        models={
            # Worst case of one held stream: (~40 input + 1,000 output tokens) x 1 pico-USD/token
            # x 1e6 ~ 0.00104 USD; ten of them hold ~90% of a 0.0115 USD budget.
            "slow": {"targets": [{"provider": "stall", "model": "gpt-4o-mini",
                                  "max_output_tokens": 1000}]},
            "chat": {"targets": [{"provider": "chaos", "model": "gpt-4o-mini",
                                  "max_output_tokens": 5000}]},
        },
    )  # fmt: skip
    with replicas(config, tmp_path, 2) as (victim, survivor):
        _key_id, key = create_key(survivor.url, budget_usd="0.0115")

        async def hold_then_kill() -> None:
            ready = asyncio.Event()
            holder = asyncio.create_task(hold_streams(victim.url, key, 10, ready))
            await asyncio.wait_for(ready.wait(), 60)
            # While the victim lives (and renews its leases) the survivor sees them.
            refused = await asyncio.to_thread(chat, survivor.url, key, max_tokens=4000)
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]["code"] == "insufficient_quota"
            victim.signal(signal.SIGKILL)
            victim.wait()
            await holder

        asyncio.run(hold_then_kill())
        deadline = time.monotonic() + 30 * lease_s
        while True:
            resp = chat(survivor.url, key, max_tokens=4000)
            if resp.status_code == 200:
                break
            assert resp.status_code == 429, resp.text
            assert time.monotonic() < deadline, "the killed replica's reservations never lapsed"
            time.sleep(lease_s / 10)  # polling interval, not synchronisation


@pytest.mark.parametrize("budget_usd", ["100", "10000", "9000000"])
def test_refusing_a_request_with_a_large_budget_left_is_a_429(
    store_url: str, redis_url: str, redis_prefix: str, tmp_path: Path, budget_usd: str
) -> None:
    # The worst case of one request (4,096 output tokens at 3e9 USD per 1M) is above any budget.
    config = base_config(
        store_url,
        tmp_path,
        prices={"gpt-4o-mini": {"input": "1", "output": "3000000000"}},
        redis={"url": redis_url, "prefix": redis_prefix},
    )
    with running_gateway(config) as gw:
        _key_id, key = create_key(gw.url, budget_usd=budget_usd)
        resp = chat(gw.url, key)
    assert resp.status_code == 429, resp.text
    assert resp.json()["error"]["code"] == "insufficient_quota"
    assert f"{budget_usd} USD left of {budget_usd}" in resp.json()["error"]["message"]


IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}


def test_images_reserve_their_true_bound_so_concurrency_cannot_overshoot(
    store_url: str, tmp_path: Path
) -> None:
    # The upstream bills 765 tokens per image (gpt-4o high detail, 2048x2048) honestly.
    config = base_config(
        store_url,
        tmp_path,
        prices={"gpt-4o-mini": {"input": "0.15", "output": "0.6"}},
        providers={"chaos": {"type": "chaos", "reported_prompt_tokens": 20 * 765,
                             "latency_ms": {"dist": "uniform", "min": 1, "max": 20}}},
        models={"chat": {"targets": [{"provider": "chaos", "model": "gpt-4o-mini",
                                      "max_output_tokens": 100}]}},
    )  # fmt: skip
    content = [{"type": "text", "text": "what are these?"}] + [IMAGE] * 20
    budget_pico = 10**11  # 0.1 USD: one request's 20-image bound (~0.0765 USD) at a time

    async def fire(url: str, key: str) -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:

            async def one() -> int:
                resp = await client.post(
                    url + "/v1/chat/completions",
                    json={"model": "chat", "messages": [{"role": "user", "content": content}]},
                    headers={"Authorization": f"Bearer {key}"},
                )
                return resp.status_code

            return list(await asyncio.gather(*(one() for _ in range(50))))

    with running_gateway(config) as gw:
        key_id, key = create_key(gw.url, budget_usd="0.1")
        statuses = asyncio.run(fire(gw.url, key))
        rows = usage_rows(gw, key_id=key_id)
    spent = sum(r["cost_pico"] for r in rows)
    assert statuses.count(200) >= 1 and set(statuses) <= {200, 429}, statuses
    assert spent <= budget_pico, f"spent {spent / budget_pico:.2f}x the budget"
    assert not any(r["reservation_exceeded"] for r in rows)
    granted = [r for r in rows if r["status"] == 200]
    assert all(r["reserved_pico"] >= r["cost_pico"] > 0 for r in granted)


def test_an_upstream_reporting_impossible_usage_is_flagged_and_freezes_the_budget(
    store_url: str, tmp_path: Path
) -> None:
    config = base_config(
        store_url,
        tmp_path,
        prices=PRICES,
        providers={"chaos": {"type": "chaos", "reported_completion_tokens": 7_500_000}},
    )
    with running_gateway(config) as gw:
        key_id, key = create_key(gw.url, budget_usd="5")
        first = chat(gw.url, key, max_tokens=10)
        assert first.status_code == 200, first.text
        deadline = time.monotonic() + 30
        while (second := chat(gw.url, key, max_tokens=10)).status_code == 200:
            assert time.monotonic() < deadline, "the budget never froze"  # settle is async
        rows = usage_rows(gw, key_id=key_id)
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "insufficient_quota"
    assert "frozen" in second.json()["error"]["message"]
    flagged = [r for r in rows if r["reservation_exceeded"]]
    assert flagged, rows
    # The honest (reported) cost is recorded, next to the much smaller reservation.
    assert flagged[0]["cost_pico"] == 7_500_000 * 10**6 + flagged[0]["input_tokens"] * 10**6
    assert flagged[0]["reserved_pico"] < flagged[0]["cost_pico"]
