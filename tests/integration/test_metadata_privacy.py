"""Request metadata follows the capture policy: an address in ``user`` is stored as a keyed
pseudonym (usage rows, traces, spans, the admin usage API), grouping still works, the
pseudonym survives a restart, ``full`` keeps it as sent, and erasure finds the person."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from pilothouse.store.db import create_engine
from pilothouse.store.tables import spans, traces
from tests.support.gateway import ThreadedGateway, base_config, running_gateway
from tests.support.ledger import stored_rows

pytestmark = pytest.mark.integration

ALICE = "alice.liddell@example.com"


def ask(gw: ThreadedGateway, key: str, meta: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}", "x-pilothouse-metadata": json.dumps(meta)},
        json={"model": "chat", "messages": [{"role": "user", "content": "hello"}]},
        timeout=30,
    )


def stored_traces(store_url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    import asyncio

    async def fetch() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        engine = create_engine(store_url)
        try:
            async with engine.connect() as conn:
                t = [dict(r._mapping) for r in await conn.execute(select(traces))]
                s = [dict(r._mapping) for r in await conn.execute(select(spans))]
                return t, s
        finally:
            await engine.dispose()

    return asyncio.run(fetch())


def flush(gw: ThreadedGateway) -> None:
    import asyncio

    assert gw.runtime is not None

    async def go() -> None:
        assert gw.runtime is not None
        await gw.runtime.ledger.flush()
        await gw.runtime.telemetry.traces.flush()

    asyncio.run_coroutine_threadsafe(go(), gw.server_loop()).result(60)


def test_an_address_in_metadata_is_stored_as_a_stable_pseudonym(
    store_url: str, tmp_path: Path
) -> None:
    cfg = base_config(store_url, tmp_path)
    with running_gateway(cfg) as gw:
        key = gw.create_key(name="app")
        for _ in range(2):
            assert ask(gw, key, {"user": ALICE, "feature": "search"}).status_code == 200
        assert ask(gw, key, {"user": "bob", "feature": "search"}).status_code == 200
        flush(gw)
        with gw.admin() as admin:
            by_user = admin.get("/admin/usage", params={"group_by": "user"}).json()
            found = admin.get("/admin/traces", params={"user": ALICE}).json()["data"]
        assert len(found) == 2  # a filter on the address finds its pseudonym's traces
    rows = stored_rows(store_url)
    users = [r["metadata"]["user"] for r in rows]
    assert users[0] == users[1] and users[0].startswith("<email:") and users[2] == "bob"
    assert all(r["metadata"]["feature"] == "search" for r in rows)  # plain values stay
    trace_rows, span_rows = stored_traces(store_url)
    assert {t["user_id"] for t in trace_rows} == {users[0], "bob"}
    everything = orjson.dumps(
        [rows, trace_rows, span_rows, by_user, found], default=str, option=orjson.OPT_NON_STR_KEYS
    ).decode()
    assert ALICE not in everything and "alice.liddell" not in everything
    assert users[0] in everything  # the admin usage API groups by the pseudonym

    with running_gateway(cfg) as again:  # a restart (another replica): the same pseudonym
        key = again.create_key(name="app2")
        assert ask(again, key, {"user": ALICE}).status_code == 200
        flush(again)
        assert stored_rows(store_url)[-1]["metadata"]["user"] == users[0]
        with again.admin() as admin:
            receipt = admin.post("/admin/privacy/erase", json={"user": ALICE})
    assert receipt.status_code == 200, receipt.text
    assert receipt.json()["clean"] is True and receipt.json()["stores"].get("usage_records") == 3
    left = orjson.dumps(
        [stored_rows(store_url), stored_traces(store_url)],
        default=str,
        option=orjson.OPT_NON_STR_KEYS,
    ).decode()
    assert users[0] not in left


def test_full_capture_stores_metadata_as_sent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/full.db"
    cfg = base_config(url, tmp_path, telemetry={"capture_content": "full"})
    with running_gateway(cfg) as gw:
        key = gw.create_key(name="app")
        assert ask(gw, key, {"user": ALICE}).status_code == 200
        flush(gw)
    assert stored_rows(url)[0]["metadata"]["user"] == ALICE
