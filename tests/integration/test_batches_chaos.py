"""Batches under faults: 1,000 lines through a failing upstream, a SIGKILL mid-batch,
cancel, RPM waits and budget refusals. Each ends with one result per line, one usage row
per line that ran, and nothing a finished line wrote changed by a restart."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select, update

from pilothouse.batches.tables import batch_lines, batches
from pilothouse.store.db import create_engine
from tests.support.batches import chat_line, jsonl, read_lines, upload, wait_done
from tests.support.gateway import (
    ADMIN_KEY,
    ProcessGateway,
    ThreadedGateway,
    base_config,
    free_port,
    running_gateway,
    write_config,
)
from tests.support.ledger import stored_rows, usage_rows

pytestmark = pytest.mark.integration
LINES = 1000


def client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=2)


def flaky_config(store_url: str, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """An upstream failing 30% of calls (500s and resets): most lines need a retry."""
    return base_config(
        store_url,
        tmp_path,
        providers={
            "flaky": {"type": "chaos", "seed": 7, "error_rate": 0.2, "reset_rate": 0.1},
        },
        models={"chat": {"targets": [{"provider": "flaky", "model": "gpt-4o-mini"}]}},
        # Bursts of failures open the breaker; lines wait for its half-open probe, not fail.
        routing={"backoff_base_s": 0.001, "backoff_max_s": 0.01, "breaker": {"cooldown_s": 0.2}},
        **extra,
    )


def assert_one_result_per_line(c: openai.OpenAI, batch: Any, usage: list[dict[str, Any]]) -> None:
    output = read_lines(c, batch.output_file_id)
    errors = read_lines(c, batch.error_file_id)
    ids = Counter(r["custom_id"] for r in output + errors)
    assert sorted(ids) == sorted(f"r{i}" for i in range(LINES))
    assert set(ids.values()) == {1}, [k for k, v in ids.items() if v > 1]
    assert all(r["response"]["status_code"] == 200 for r in output)
    assert all(r["response"]["status_code"] == 502 for r in errors)  # retries exhausted
    assert (batch.request_counts.completed, batch.request_counts.failed) == (
        len(output),
        len(errors),
    )
    per_line = Counter(r["metadata"]["custom_id"] for r in usage)
    assert sorted(per_line) == sorted(ids) and set(per_line.values()) == {1}
    recorded = {r["request_id"]: r["status"] for r in usage}
    for r in output + errors:  # each result is the request its usage row describes
        assert recorded[r["response"]["request_id"]] == r["response"]["status_code"]


def test_a_thousand_lines_through_a_failing_upstream(store_url: str, tmp_path: Path) -> None:
    config = flaky_config(store_url, tmp_path, batches={"concurrency": 8, "retry_backoff_s": 0.0})
    with running_gateway(config) as gw:
        c = client(gw.url, gw.create_key())
        lines = [chat_line(f"r{i}", text=f"question {i}") for i in range(LINES)]
        batch = c.batches.create(
            input_file_id=upload(c, jsonl(lines)),
            endpoint="/v1/chat/completions",
            completion_window="24h",
        )
        batch = wait_done(c, batch.id, timeout=600)
        assert batch.status == "completed"
        usage = [r for r in usage_rows(gw) if r["metadata"]["batch_id"] == batch.id]
        assert_one_result_per_line(c, batch, usage)
        assert batch.request_counts.completed > 900  # 3 tries against 30% failures


def finished_lines(store_url: str, batch_id: str) -> dict[str, str]:
    async def fetch() -> dict[str, str]:
        engine = create_engine(store_url)
        try:
            query = select(batch_lines.c.custom_id, batch_lines.c.request_id).where(
                batch_lines.c.batch_id == batch_id, batch_lines.c.state != "pending"
            )
            async with engine.connect() as conn:
                return {r.custom_id: r.request_id for r in await conn.execute(query)}
        finally:
            await engine.dispose()

    return asyncio.run(fetch())


def test_sigkill_mid_batch_then_restart_loses_and_repeats_nothing(
    store_url: str, tmp_path: Path
) -> None:
    config = flaky_config(
        store_url,
        tmp_path,
        batches={"concurrency": 4, "retry_backoff_s": 0.0, "lease_s": 2.0, "poll_interval_s": 0.2},
    )
    path = write_config(tmp_path / "pilothouse.yaml", config)
    port = free_port()
    first = ProcessGateway(path, port, {}).start()
    try:
        with httpx.Client(
            base_url=first.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as a:
            key = a.post("/admin/keys", json={"name": "batch"}).json()["key"]
        c = client(first.url, key)
        lines = [chat_line(f"r{i}", text=f"question {i}") for i in range(LINES)]
        batch = c.batches.create(
            input_file_id=upload(c, jsonl(lines)),
            endpoint="/v1/chat/completions",
            completion_window="24h",
        )
        deadline = time.monotonic() + 120
        while True:  # poll the store the runner commits to, then kill mid-run
            progress = c.batches.retrieve(batch.id)
            counts = progress.request_counts
            if counts.completed + counts.failed >= 150:
                break
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.01)
        first.signal(signal.SIGKILL)
        assert first.wait() == -signal.SIGKILL
    finally:
        first.stop()
    before = finished_lines(store_url, batch.id)
    assert 150 <= len(before) < LINES, "the batch must be killed mid-run"

    second = ProcessGateway(path, port, {}).start()
    try:
        c = client(second.url, key)
        done = wait_done(c, batch.id, timeout=600)
        assert done.status == "completed"
        usage = [
            r for r in stored_rows(store_url) if (r["metadata"] or {}).get("batch_id") == batch.id
        ]
        assert_one_result_per_line(c, done, usage)
        after = finished_lines(store_url, batch.id)
        assert {k: after[k] for k in before} == before  # finished lines kept, never re-run
    finally:
        second.stop()


@pytest.fixture
def gateway(tmp_path: Path) -> Any:
    config = base_config(f"sqlite:///{tmp_path}/p.db", tmp_path)
    with running_gateway(config) as gw:
        yield gw


def test_rpm_refusals_wait_and_cancel_stops_the_rest(gateway: ThreadedGateway) -> None:
    # 2 requests a minute: two lines run at once, the third waits for the bucket to refill.
    c = client(gateway.url, gateway.create_key(rpm=2))
    lines = [chat_line(f"c{i}") for i in range(10)]
    batch = c.batches.create(
        input_file_id=upload(c, jsonl(lines)), endpoint="/v1/chat/completions",
        completion_window="24h",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while c.batches.retrieve(batch.id).request_counts.completed < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    progress = c.batches.retrieve(batch.id)
    assert progress.status == "in_progress" and progress.request_counts.failed == 0  # waiting
    cancelled = c.batches.cancel(batch.id)
    assert cancelled.status in ("cancelling", "cancelled") and cancelled.cancelling_at
    done = wait_done(c, batch.id)
    assert done.status == "cancelled" and done.cancelled_at
    output = read_lines(c, done.output_file_id)
    errors = read_lines(c, done.error_file_id)
    assert len(output) == done.request_counts.completed == 2
    assert {e["error"]["code"] for e in errors} == {"batch_cancelled"}
    assert sorted(r["custom_id"] for r in output + errors) == sorted(f"c{i}" for i in range(10))
    usage = [r for r in usage_rows(gateway) if (r["metadata"] or {}).get("batch_id") == batch.id]
    assert len(usage) == 2  # the cancelled lines never ran
    assert c.batches.cancel(batch.id).status == "cancelled"  # again: no change, no error
    failed = c.batches.create(
        input_file_id=upload(c, jsonl([{**chat_line("x"), "method": "GET"}])),
        endpoint="/v1/chat/completions", completion_window="24h",
    )  # fmt: skip
    assert failed.status == "failed"
    with pytest.raises(openai.ConflictError):  # a finished batch cannot be cancelled
        c.batches.cancel(failed.id)


def test_a_budget_refusal_fails_the_line_with_the_reason(tmp_path: Path) -> None:
    config = base_config(
        f"sqlite:///{tmp_path}/p.db",
        tmp_path,
        prices={"gpt-4o-mini": {"input": "1", "output": "3000000000"}},
    )
    with running_gateway(config) as gw:
        c = client(gw.url, gw.create_key(budget_usd="1"))
        batch = c.batches.create(
            input_file_id=upload(c, jsonl([chat_line("a"), chat_line("b")])),
            endpoint="/v1/chat/completions", completion_window="24h",
        )  # fmt: skip
        done = wait_done(c, batch.id)
        assert done.status == "completed" and done.request_counts.failed == 2
        for line in read_lines(c, done.error_file_id):
            assert line["response"]["status_code"] == 429
            assert line["response"]["body"]["error"]["code"] == "insufficient_quota"
        usage = [r for r in usage_rows(gw) if (r["metadata"] or {}).get("batch_id") == batch.id]
        assert sorted(r["status"] for r in usage) == [429, 429]


def lease_owner(store_url: str, batch_id: str) -> str | None:
    async def fetch() -> str | None:
        engine = create_engine(store_url)
        try:
            query = select(batches.c.lease_owner).where(batches.c.id == batch_id)
            async with engine.connect() as conn:
                return (await conn.execute(query)).scalar_one()
        finally:
            await engine.dispose()

    return asyncio.run(fetch())


def test_two_replicas_one_runner_and_a_takeover_after_sigkill(
    postgres_url: str, tmp_path: Path
) -> None:
    config = flaky_config(
        postgres_url,
        tmp_path,
        batches={"concurrency": 4, "retry_backoff_s": 0.0, "lease_s": 2.0, "poll_interval_s": 0.2},
    )
    path = write_config(tmp_path / "pilothouse.yaml", config)
    gateways = [ProcessGateway(path, free_port(), {}).start() for _ in range(2)]
    try:
        with httpx.Client(headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
            key = admin.post(gateways[0].url + "/admin/keys", json={"name": "b"}).json()["key"]
        c = client(gateways[1].url, key)
        lines = [chat_line(f"r{i}", text=f"question {i}") for i in range(LINES)]
        batch = c.batches.create(
            input_file_id=upload(c, jsonl(lines)),
            endpoint="/v1/chat/completions",
            completion_window="24h",
        )
        owners: set[str] = set()
        deadline = time.monotonic() + 120
        while True:  # both replicas poll for work; only one may hold the batch
            owner = lease_owner(postgres_url, batch.id)
            if owner is not None:
                owners.add(owner)
            counts = c.batches.retrieve(batch.id).request_counts
            if counts.completed + counts.failed >= 150:
                break
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.01)
        assert len(owners) == 1
        pid = int(next(iter(owners)).split(":")[1])
        (victim,) = [g for g in gateways if g.proc is not None and g.proc.pid == pid]
        (survivor,) = [g for g in gateways if g is not victim]
        victim.signal(signal.SIGKILL)
        assert victim.wait() == -signal.SIGKILL

        c = client(survivor.url, key)
        done = wait_done(c, batch.id, timeout=600)
        assert done.status == "completed"
        usage = [
            r
            for r in stored_rows(postgres_url)
            if (r["metadata"] or {}).get("batch_id") == batch.id
        ]
        assert_one_result_per_line(c, done, usage)
    finally:
        for gw in gateways:
            gw.stop()


def test_a_batch_past_its_window_expires_with_the_unrun_lines_reported(
    gateway: ThreadedGateway,
) -> None:
    c = client(gateway.url, gateway.create_key(rpm=1))  # one line runs, the rest wait
    lines = [chat_line(f"x{i}") for i in range(5)]
    batch = c.batches.create(
        input_file_id=upload(c, jsonl(lines)), endpoint="/v1/chat/completions",
        completion_window="24h",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while c.batches.retrieve(batch.id).request_counts.completed < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)

    async def age() -> None:  # 24 hours pass
        engine = create_engine(gateway.settings.store.url)
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    update(batches)
                    .where(batches.c.id == batch.id)
                    .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
                )
        finally:
            await engine.dispose()

    asyncio.run(age())
    done = wait_done(c, batch.id)
    assert done.status == "expired" and done.expired_at is not None
    assert done.request_counts.completed == 1
    assert [r["custom_id"] for r in read_lines(c, done.output_file_id)] == ["x0"]
    expired = read_lines(c, done.error_file_id)
    assert sorted(r["custom_id"] for r in expired) == ["x1", "x2", "x3", "x4"]
    assert {r["error"]["code"] for r in expired} == {"batch_expired"}


def test_sigterm_stops_promptly_and_hands_the_batch_back(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path}/p.db"
    config = base_config(store_url, tmp_path, batches={"lease_s": 600.0})
    path = write_config(tmp_path / "pilothouse.yaml", config)
    gw = ProcessGateway(path, free_port(), {}).start()
    try:
        with httpx.Client(headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
            resp = admin.post(gw.url + "/admin/keys", json={"name": "b", "rpm": 2})
            key = resp.json()["key"]
        c = client(gw.url, key)
        batch = c.batches.create(
            input_file_id=upload(c, jsonl([chat_line(f"s{i}") for i in range(6)])),
            endpoint="/v1/chat/completions",
            completion_window="24h",
        )
        deadline = time.monotonic() + 60
        while c.batches.retrieve(batch.id).request_counts.completed < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert lease_owner(store_url, batch.id) is not None  # held while lines wait on RPM
        gw.signal(signal.SIGTERM)
        assert gw.wait(timeout=30) in (0, -signal.SIGTERM)  # RPM waits did not hold it
    finally:
        gw.stop()
    assert lease_owner(store_url, batch.id) is None  # another replica may take it at once
    assert len(finished_lines(store_url, batch.id)) == 2  # the waiting lines stay pending


def test_a_small_batch_does_not_wait_behind_a_throttled_one(gateway: ThreadedGateway) -> None:
    slow = client(gateway.url, gateway.create_key(name="slow", rpm=1))
    fast = client(gateway.url, gateway.create_key(name="fast"))
    held = slow.batches.create(
        input_file_id=upload(slow, jsonl([chat_line(f"s{i}") for i in range(5)])),
        endpoint="/v1/chat/completions", completion_window="24h",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while slow.batches.retrieve(held.id).request_counts.completed < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    small = fast.batches.create(
        input_file_id=upload(fast, jsonl([chat_line("f0"), chat_line("f1")])),
        endpoint="/v1/chat/completions", completion_window="24h",
    )  # fmt: skip
    assert wait_done(fast, small.id).request_counts.completed == 2
    assert slow.batches.retrieve(held.id).status == "in_progress"  # still waiting on its RPM
    assert slow.batches.cancel(held.id).status in ("cancelling", "cancelled")
