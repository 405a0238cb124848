"""`pilothouse chaos serve`'s app on a free loopback port, in a background thread."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from pilothouse.chaos.plan import ChaosConfig
from pilothouse.chaos.server import build_chaos_app
from tests.support.aiohttp_thread import serve_in_thread


@contextmanager
def chaos_upstream(**options: Any) -> Iterator[str]:
    """Yield the base URL (…/v1) of a real HTTP chaos upstream with ``options``."""
    config = msgspec.convert({"type": "chaos", **options}, ChaosConfig)
    with serve_in_thread(build_chaos_app(config)) as url:
        yield url + "/v1"
