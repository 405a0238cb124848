"""`pilothouse_event_loop_lag_seconds` shows a blocked request loop (issue 13, a flat tail)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from pilothouse.config.load import parse_settings
from tests.support.gateway import ADMIN_KEY, ThreadedGateway, base_config

pytestmark = pytest.mark.integration


def lag_series(gw: ThreadedGateway) -> dict[str, float]:
    text = httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).text
    out = {}
    for line in text.splitlines():
        if line.startswith("pilothouse_event_loop_lag_seconds"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_a_blocked_loop_is_visible_as_lag(tmp_path: Path) -> None:
    config = base_config(f"sqlite:///{tmp_path}/ph.db", tmp_path)
    gw = ThreadedGateway(parse_settings(config)).start()
    try:

        async def hog() -> None:
            time.sleep(0.4)  # the stimulus: something holding the event loop

        asyncio.run_coroutine_threadsafe(hog(), gw.server_loop()).result(timeout=30)
        slow = 0.0
        for _ in range(1000):  # bounded: the sampler records the late tick on its next wake-up
            series = lag_series(gw)
            total = series.get("pilothouse_event_loop_lag_seconds_count", 0.0)
            fast = series.get('pilothouse_event_loop_lag_seconds_bucket{le="0.25"}', 0.0)
            slow = total - fast
            if slow >= 1:
                break
        assert slow >= 1, "a 400 ms stall must appear above the 250 ms bucket"
    finally:
        gw.stop()
