"""`pilothouse chaos serve`'s app on a free loopback port, in a background thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
from aiohttp import web

from pilothouse.chaos.plan import ChaosConfig
from pilothouse.chaos.server import build_chaos_app
from tests.support.gateway import free_port


@contextmanager
def chaos_upstream(**options: Any) -> Iterator[str]:
    """Yield the base URL (…/v1) of a real HTTP chaos upstream with ``options``."""
    config = msgspec.convert({"type": "chaos", **options}, ChaosConfig)
    port = free_port()
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def serve() -> web.AppRunner:
        runner = web.AppRunner(build_chaos_app(config), shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    def run() -> None:
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(serve())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
