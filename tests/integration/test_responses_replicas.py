"""A stored response is readable at once on every replica, and a delete holds everywhere.

With Redis the store write leaves the request path (gateway/responses_store.py),
so this is the property that must not be traded away: a client that sends
``previous_response_id`` to another replica straight after the answer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest
from sqlalchemy import select

from pilothouse.store.db import create_engine
from pilothouse.store.tables import responses
from tests.support.gateway import base_config, running_gateway


def stored_response_ids(store_url: str) -> set[str]:
    async def fetch() -> set[str]:
        engine = create_engine(store_url)
        try:
            async with engine.connect() as conn:
                return {r.id for r in await conn.execute(select(responses.c.id))}
        finally:
            await engine.dispose()

    return asyncio.run(fetch())


pytestmark = pytest.mark.integration


def test_previous_response_id_works_on_another_replica_at_once(
    tmp_path: Path, postgres_url: str, redis_url: str, redis_prefix: str
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    redis = {"url": redis_url, "prefix": redis_prefix}
    with (
        running_gateway(base_config(postgres_url, tmp_path / "a", redis=redis)) as a,
        running_gateway(base_config(postgres_url, tmp_path / "b", redis=redis)) as b,
    ):
        key = a.create_key()
        on_a = openai.OpenAI(base_url=a.url + "/v1", api_key=key, max_retries=0)
        on_b = openai.OpenAI(base_url=b.url + "/v1", api_key=key, max_retries=0)
        first = on_a.responses.create(model="chat", input="one two")
        follow = on_b.responses.create(model="chat", input="three", previous_response_id=first.id)
        assert on_b.responses.retrieve(first.id).id == first.id
        other = openai.OpenAI(base_url=b.url + "/v1", api_key=a.create_key(), max_retries=0)
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(first.id)  # another key's: not even on Redis
        on_b.responses.delete(first.id)
        with pytest.raises(openai.NotFoundError):
            on_a.responses.retrieve(first.id)
        assert on_a.responses.retrieve(follow.id).id == follow.id
    # Both replicas stopped: the background inserts landed, the deleted one is gone.
    assert stored_response_ids(postgres_url) == {follow.id}


def test_responses_land_in_the_store(tmp_path: Path) -> None:
    """SQLite: the in-process copy bridges the insert; after shutdown the store has the row."""
    store_url = f"sqlite:///{tmp_path}/ph.db"
    with running_gateway(base_config(store_url, tmp_path)) as gw:
        api = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.create_key(), max_retries=0)
        made = api.responses.create(model="chat", input="hello")
        assert api.responses.retrieve(made.id).id == made.id
    assert stored_response_ids(store_url) == {made.id}
