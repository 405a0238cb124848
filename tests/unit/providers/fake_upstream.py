"""A real HTTP server on 127.0.0.1 that records requests and plays scripted replies.

Provider tests talk to it over a real socket with the provider's real aiohttp
session, so URLs, headers, bodies and stream framing are exercised end to end.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

Handler = Callable[[web.Request, Any], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    """One request as the upstream received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeUpstream:
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    replies: list[Handler] = field(default_factory=list)
    check: Callable[[Seen], web.StreamResponse | None] | None = None
    _runner: web.AppRunner | None = None

    async def start(self) -> FakeUpstream:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def last(self) -> Seen:
        return self.seen[-1]

    # -- scripting ------------------------------------------------------------------------

    def json(self, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        async def reply(request: web.Request, _: Any) -> web.StreamResponse:
            return web.Response(
                body=orjson.dumps(body),
                status=status,
                headers=headers,
                content_type="application/json",
            )

        self.replies.append(reply)

    def raw(self, body: bytes, status: int = 200, content_type: str = "text/plain") -> None:
        async def reply(request: web.Request, _: Any) -> web.StreamResponse:
            return web.Response(body=body, status=status, content_type=content_type)

        self.replies.append(reply)

    def sse(self, frames: list[bytes], piece: int = 0) -> None:
        """Stream ``frames``; with ``piece`` > 0, in writes of that many bytes."""

        async def reply(request: web.Request, _: Any) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            data = b"".join(frames)
            step = piece or len(data) or 1
            for i in range(0, len(data), step):
                await resp.write(data[i : i + step])
            await resp.write_eof()
            return resp

        self.replies.append(reply)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw) if raw else None
        path = request.rel_url.raw_path  # as sent on the wire, percent-escapes intact
        seen = Seen(request.method, path, dict(request.query), dict(request.headers), body)
        self.seen.append(seen)
        if self.check is not None and (refused := self.check(seen)) is not None:
            return refused
        if not self.replies:
            return web.Response(status=500, text="fake upstream: no reply scripted")
        return await self.replies.pop(0)(request, body)


def sse_frame(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    return head + b"data: " + payload + b"\n\n"
