"""A real HTTP sink for tests: an OTLP collector or an alert webhook that keeps bodies."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.aiohttp_thread import serve_in_thread


@dataclass
class Received:
    bodies: list[bytes] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)


@contextmanager
def http_sink(path: str) -> Iterator[tuple[str, Received]]:
    """A POST endpoint on a free loopback port that keeps every body it receives."""
    received = Received()

    async def handle(request: web.Request) -> web.Response:
        received.bodies.append(await request.read())
        received.content_types.append(request.headers.get("Content-Type", ""))
        received.arrived.set()
        return web.Response(status=200, body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post(path, handle)
    with serve_in_thread(app) as url:
        yield url, received
