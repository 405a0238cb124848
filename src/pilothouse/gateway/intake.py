"""Slow-upload defence: what a request may hold before it is known and complete.

A request takes capacity only once it has earned it. Authentication costs
nothing; then the request takes a slot of its *key* (``limits.max_concurrency_per_key``
or the key's own ``max_concurrency``: 429 past it), reads its body under a
deadline (``server.body_timeout_s``: 408 past it), and only then takes a slot of
the gateway (``server.max_in_flight``: 503 past it). So stalled uploads from one
key use up that key's slots and no one else's. Header count and size are
refused with 431 before any route runs (``HeaderLimits``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from pilothouse.errors import OverloadedError, RateLimitError

if TYPE_CHECKING:
    from pilothouse.gateway.context import RequestContext
    from pilothouse.gateway.runtime import Runtime


class KeySlots:
    """In-flight requests per key id, in this process (each worker counts its own)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def take(self, key_id: str, limit: int | None) -> bool:
        held = self._counts.get(key_id, 0)
        if limit is not None and held >= limit:
            return False
        self._counts[key_id] = held + 1
        return True

    def give(self, key_id: str) -> None:
        held = self._counts.get(key_id, 0) - 1
        if held > 0:
            self._counts[key_id] = held
        else:
            self._counts.pop(key_id, None)

    def held(self, key_id: str) -> int:
        return self._counts.get(key_id, 0)


def take_key_slot(rt: Runtime, ctx: RequestContext) -> None:
    """Count the request against its key; 429 with ``Retry-After`` when the key is at its cap."""
    key = ctx.key
    assert key is not None
    limit = key.max_concurrency or rt.settings.limits.max_concurrency_per_key
    if not rt.key_slots.take(key.id, limit):
        raise RateLimitError(
            f"key `{key.name}` already has {limit} requests in flight; retry when one finishes",
            retry_after=1,
            code="concurrency_limit_exceeded",
        )
    ctx.key_slot = True


def take_gateway_slot(rt: Runtime, ctx: RequestContext) -> None:
    """Load shedding, once the body is in: 503 with ``Retry-After`` at ``max_in_flight``."""
    if rt.draining or rt.in_flight >= rt.settings.server.max_in_flight:
        raise OverloadedError("the gateway is at capacity; retry shortly")
    rt.enter()
    ctx.gateway_slot = True


def release(rt: Runtime, ctx: RequestContext) -> None:
    """Give back whatever slots the request took; safe to call once at the very end."""
    if ctx.gateway_slot:
        ctx.gateway_slot = False
        rt.leave()
    if ctx.key_slot and ctx.key is not None:
        ctx.key_slot = False
        rt.key_slots.give(ctx.key.id)


def framing_error(headers: Any) -> str | None:
    """Why a request's body framing is ambiguous or malformed, or ``None`` when it is sound.

    uvicorn's parsers refuse these before the app; this keeps the answer a
    precise 400 under any ASGI server that passes them through (request
    smuggling lives in exactly these disagreements).
    """
    lengths = [v.strip() for k, v in headers if k.lower() == b"content-length"]
    chunked = any(k.lower() == b"transfer-encoding" for k, _ in headers)
    if any(not v.isdigit() for v in lengths):  # bytes.isdigit: ASCII only
        return "Content-Length must be ASCII digits (0-9)"
    if len(set(lengths)) > 1:
        return "conflicting Content-Length headers"
    if lengths and chunked:
        return "both Transfer-Encoding and Content-Length are set; send one"
    return None


async def _refuse(send: Any, status: int, code: str, message: str) -> None:
    """An OpenAI-shaped error sent straight from the middleware; the connection is closed."""
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    body = orjson.dumps({"error": error})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HeaderLimits:
    """ASGI middleware: 431 for too many or too large headers, 400 for bad body framing.

    httptools (the production parser) has no header limits of its own, so they
    are enforced here for every route, before any handler or body read.
    """

    def __init__(self, app: Any, *, max_count: int, max_bytes: int) -> None:
        self.app = app
        self.max_count = max_count
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = scope.get("headers") or ()
            size = sum(len(k) + len(v) + 4 for k, v in headers)
            if len(headers) > self.max_count or size > self.max_bytes:
                what = (
                    f"{len(headers)} headers; the limit is {self.max_count}"
                    if len(headers) > self.max_count
                    else f"{size} bytes of headers; the limit is {self.max_bytes}"
                )
                message = f"request has {what}"
                await _refuse(send, 431, "request_header_fields_too_large", message)
                return
            framing = framing_error(headers)
            if framing is not None:
                await _refuse(send, 400, "invalid_framing", framing)
                return
        await self.app(scope, receive, send)
