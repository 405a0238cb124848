"""Migration 0014: the semantic cache columns on usage records, up and down."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.migrations import column_round_trip

pytestmark = pytest.mark.integration
COLUMNS = {"cache_kind", "cache_tokens_saved"}


def test_migration_0014_upgrades_and_downgrades(store_url: str) -> None:
    asyncio.run(column_round_trip(store_url, "0014_semantic_cache", "usage_records", COLUMNS))
