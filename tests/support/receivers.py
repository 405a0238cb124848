"""Small real HTTP receivers for tests: an OTLP collector and an alert webhook sink."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.gateway import free_port


@dataclass
class Received:
    bodies: list[bytes] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)


@contextmanager
def http_sink(path: str) -> Iterator[tuple[str, Received]]:
    """A POST endpoint on a free loopback port that keeps every body it receives."""
    received = Received()
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def handle(request: web.Request) -> web.Response:
        received.bodies.append(await request.read())
        received.content_types.append(request.headers.get("Content-Type", ""))
        received.arrived.set()
        return web.Response(status=200, body=b"", content_type="application/x-protobuf")

    async def serve() -> web.AppRunner:
        app = web.Application()
        app.router.add_post(path, handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    def run() -> None:
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(serve())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
