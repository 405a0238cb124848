"""A cache hit is billed 0/0 tokens but records what it saved: the tokens and the dollars its
answer cost upstream when it was made (the console's dashboards add these up)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from pilothouse.store.db import create_engine
from pilothouse.store.tables import usage_records as u
from tests.support.gateway import base_config, running_gateway

pytestmark = pytest.mark.integration


async def _rows(url: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            query = select(u).order_by(u.c.created_at, u.c.id)
            return [dict(r._mapping) for r in await conn.execute(query)]
    finally:
        await engine.dispose()


def test_a_cache_hit_records_the_tokens_and_dollars_it_saved(
    store_url: str, tmp_path: Path
) -> None:
    config = base_config(store_url, tmp_path)
    config["models"]["chat"]["cache"] = {"ttl_s": 600}
    with running_gateway(config) as gw:
        key = gw.create_key(name="app")
        body = {"model": "chat", "messages": [{"role": "user", "content": "same question"}]}
        answers = []
        for _ in range(2):
            resp = httpx.post(
                gw.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json=body,
                timeout=30,
            )
            assert resp.status_code == 200, resp.text
            answers.append(resp)
        assert answers[1].headers.get("x-pilothouse-cache") == "hit"
        assert gw.runtime is not None
        asyncio.run_coroutine_threadsafe(gw.runtime.ledger.flush(), gw.server_loop()).result(30)
    miss, hit = asyncio.run(_rows(store_url))
    assert not miss["cache_hit"] and miss["cache_saved_pico"] is None
    assert miss["cost_pico"] > 0 and miss["input_tokens"] > 0
    assert hit["cache_hit"] and (hit["input_tokens"], hit["output_tokens"]) == (0, 0)
    assert hit["cost_pico"] == 0
    assert hit["cache_tokens_saved"] == miss["input_tokens"] + miss["output_tokens"]
    assert hit["cache_saved_pico"] == miss["cost_pico"]
