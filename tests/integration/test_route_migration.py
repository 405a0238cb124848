"""Migration 0013: the routing decision's columns on usage records, up and down."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.migrations import column_round_trip

pytestmark = pytest.mark.integration
COLUMNS = {
    "route_requested",
    "route_policy",
    "route_rule",
    "route_reason",
    "route_degraded",
    "route_steps",
}


def test_migration_0013_upgrades_and_downgrades(store_url: str) -> None:
    asyncio.run(column_round_trip(store_url, "0013_route_decisions", "usage_records", COLUMNS))
