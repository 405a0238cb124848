"""Replicas that share PostgreSQL and Redis: alerts sent once, config drift visible."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pilothouse.config.load import parse_settings
from tests.support.gateway import ThreadedGateway, base_config
from tests.support.ledger import usage_rows
from tests.support.receivers import http_sink

pytestmark = pytest.mark.integration
MESSAGES = [{"role": "user", "content": "hello"}]


@contextlib.contextmanager
def replicas(config: dict[str, Any], n: int) -> Iterator[list[ThreadedGateway]]:
    started: list[ThreadedGateway] = []
    try:
        for _ in range(n):
            started.append(ThreadedGateway(parse_settings(config, source="<test>")).start())
        yield started
    finally:
        for gw in started:
            gw.stop()


def on_loop(gw: ThreadedGateway, coro: Any) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, gw.server_loop()).result(60)


def sweep_and_drain(gateways: list[ThreadedGateway]) -> None:
    """Every replica evaluates the budgets, then delivers (or skips) what it raised."""
    now = datetime.now(UTC)
    for gw in gateways:
        assert gw.runtime is not None
        on_loop(gw, gw.runtime.budget_alerts.sweep(now))
    for gw in gateways:
        assert gw.runtime is not None and gw.runtime.telemetry.notifier is not None
        on_loop(gw, gw.runtime.telemetry.notifier.drain())


def test_three_replicas_send_each_budget_alert_once(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    with http_sink("/hook") as (hook_url, received):
        config = base_config(
            postgres_url,
            tmp_path,
            redis={"url": redis_url, "prefix": redis_prefix},
            prices={"gpt-4o-mini": {"input": 0, "output": 100_000}},  # 0.10 USD per token
            slo={"webhook": {"url": hook_url + "/hook", "max_attempts": 1}},
            costs={"budget_alert_interval_s": 3600},  # swept by the test, not the clock
        )
        with replicas(config, 3) as gateways:
            key = gateways[0].create_key(name="team-a", budget_usd="1")
            for n in range(6):  # spread over the replicas, as a balancer would
                gw = gateways[n % 3]
                resp = httpx.post(
                    gw.url + "/v1/chat/completions",
                    json={"model": "chat", "messages": MESSAGES, "max_tokens": 1},
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=30,
                )
                assert resp.status_code == 200, resp.text
            for gw in gateways:
                usage_rows(gw)  # flush every replica's ledger before the sweeps
            sweep_and_drain(gateways)  # 0.60 of 1 USD spent: the 50 % threshold
            sweep_and_drain(gateways)  # evaluated again: still nothing new
            notifiers = [gw.runtime.telemetry.notifier for gw in gateways if gw.runtime]
            delivered = sum(n.delivered for n in notifiers if n is not None)
            skipped = sum(n.skipped for n in notifiers if n is not None)
    sent = [orjson.loads(body) for body in received.bodies]
    assert [(a["kind"], a["status"], a["labels"]["threshold"]) for a in sent] == [
        ("budget_threshold", "firing", "50%")
    ]
    assert (delivered, skipped) == (1, 2)  # every replica raised it; one sent it


def test_readyz_and_metrics_show_each_replicas_config_hash(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    config = base_config(postgres_url, tmp_path, redis={"url": redis_url, "prefix": redis_prefix})
    drifted = {**config, "routing": {**config["routing"], "timeout_s": 30}}
    with replicas(config, 2) as same, replicas(drifted, 1) as other:
        ready = [httpx.get(gw.url + "/readyz", timeout=10).json() for gw in [*same, *other]]
        metrics = [
            httpx.get(gw.url + "/metrics", headers=gw.admin().headers, timeout=10).text
            for gw in [*same, *other]
        ]
    for body in ready:
        assert body["ready"] is True
        assert body["checks"]["store"] == body["checks"]["redis"] == "ok"
        assert body["route_version"]
    hashes = [body["config_hash"] for body in ready]
    assert hashes[0] == hashes[1] != hashes[2]
    for digest, text in zip(hashes, metrics, strict=True):
        assert f'pilothouse_config_info{{hash="{digest}"}} 1.0' in text
        assert text.count("pilothouse_config_info{") == 1
