"""A deliberately tiny OpenAI-compatible upstream for overhead benchmarks.

The gateway benchmark subtracts "direct to this mock" from "through a gateway",
so the mock must cost as little CPU as possible and answer identically every
time: it is a raw asyncio Protocol (on uvloop when available) parsed by
httptools, and every response body is built once at start-up. No framework,
no randomness, no sleeps.

Endpoints: POST /v1/chat/completions (JSON, or SSE when ``"stream": true``,
with a final usage chunk when ``stream_options.include_usage`` is true),
POST /v1/embeddings, GET /v1/models, GET /health, and GET /_stats (request
counters, so a benchmark can check that every client request really reached
the upstream and was not answered from a cache or dropped).

Run: ``python benchmarks/mock_upstream.py --port 9100``
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections import Counter
from collections.abc import Coroutine
from typing import Any, cast

import httptools
import orjson

MODEL = "gpt-4o-mini"
CREATED = 1_700_000_000
USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
WORDS = ["Hello", " from", " the", " mock", " upstream."]
EMBED_DIM = 8


def _http(status: str, body: bytes, content_type: bytes = b"application/json") -> bytes:
    """One complete HTTP/1.1 response with a Content-Length body."""
    head = (
        b"HTTP/1.1 " + status.encode() + b"\r\n"
        b"content-type: " + content_type + b"\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"x-request-id: mock\r\n\r\n"
    )
    return head + body


def _chunked(events: list[bytes]) -> bytes:
    """An SSE response, one HTTP chunk per event, sent in a single write.

    Real providers use chunked transfer encoding for streams, so the gateway's
    SSE parser gets realistic framing; writing it at once keeps the mock cheap.
    """
    head = (
        b"HTTP/1.1 200 OK\r\n"
        b"content-type: text/event-stream\r\n"
        b"cache-control: no-cache\r\n"
        b"transfer-encoding: chunked\r\n"
        b"x-request-id: mock\r\n\r\n"
    )
    parts = [head]
    for event in events:
        parts.append(f"{len(event):x}\r\n".encode() + event + b"\r\n")
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


def _chat_body() -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(WORDS)},
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    )


def _sse(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _stream_events(include_usage: bool) -> list[bytes]:
    """The chunk sequence OpenAI sends: role, content deltas, stop, usage, DONE."""
    base = {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
    }
    deltas: list[dict[str, object]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": w} for w in WORDS]
    events = []
    for delta in deltas:
        choice = {"index": 0, "delta": delta, "finish_reason": None}
        events.append(_sse({**base, "choices": [choice]}))
    events.append(_sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    if include_usage:
        events.append(_sse({**base, "choices": [], "usage": USAGE}))
    events.append(b"data: [DONE]\n\n")
    return events


def _embeddings_body() -> bytes:
    return orjson.dumps(
        {
            "object": "list",
            "data": [
                {
                    "object": "embedding",
                    "index": 0,
                    "embedding": [round(0.1 * i, 1) for i in range(EMBED_DIM)],
                }
            ],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 4, "total_tokens": 4},
        }
    )


def _models_body() -> bytes:
    return orjson.dumps(
        {
            "object": "list",
            "data": [{"id": MODEL, "object": "model", "created": CREATED, "owned_by": "mock"}],
        }
    )


def _error_body(message: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": "invalid_request_error"}})


RESPONSES = {
    "chat": _http("200 OK", _chat_body()),
    "stream": _chunked(_stream_events(include_usage=False)),
    "stream_usage": _chunked(_stream_events(include_usage=True)),
    "embeddings": _http("200 OK", _embeddings_body()),
    "models": _http("200 OK", _models_body()),
    "health": _http("200 OK", b'{"status":"ok"}'),
    "bad_json": _http("400 Bad Request", _error_body("body is not JSON")),
    "not_found": _http("404 Not Found", _error_body("no such route")),
}
STATS: Counter[str] = Counter()


def choose_response(method: bytes, path: bytes, body: bytes) -> str:
    """Map one request to the name of a prebuilt response."""
    path = path.split(b"?", 1)[0]
    if method == b"POST" and path == b"/v1/chat/completions":
        try:
            req = orjson.loads(body)
        except orjson.JSONDecodeError:
            return "bad_json"
        if not req.get("stream"):
            return "chat"
        opts = req.get("stream_options") or {}
        return "stream_usage" if opts.get("include_usage") else "stream"
    if method == b"POST" and path == b"/v1/embeddings":
        return "embeddings"
    if method == b"GET" and path == b"/v1/models":
        return "models"
    if method == b"GET" and path == b"/health":
        return "health"
    return "not_found"


class MockProtocol(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; httptools calls back into it."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        path = self.url
        if path == b"/_stats":
            payload = _http("200 OK", orjson.dumps(dict(STATS)))
        else:
            name = choose_response(method, path, b"".join(self.body))
            STATS[name] += 1
            payload = RESPONSES[name]
        assert self.transport is not None
        self.transport.write(payload)
        if not self.parser.should_keep_alive():
            self.transport.close()


async def serve(host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(MockProtocol, host, port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    run_fast(serve(args.host, args.port))


def run_fast(coro: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed (it roughly halves per-request cost)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


if __name__ == "__main__":
    main()
