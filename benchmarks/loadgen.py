"""A cheap, honest HTTP/1.1 load generator for gateway overhead benchmarks.

Why not httpx/aiohttp: on a 2-core machine the client shares CPU with the
gateway and the upstream, so every microsecond the client spends is stolen
from what is being measured. This client is a raw asyncio Protocol on uvloop
with httptools parsing; each request is a prebuilt byte string on a
keep-alive connection. Its own ceiling is reported by running it against the
mock upstream directly.

Two load patterns:

* closed loop: ``concurrency`` workers, each sending its next request as soon
  as the previous one finished (concurrency 1 = sequential);
* open loop: requests *scheduled* at a fixed rate, latency measured from the
  scheduled send time, so a stalled server cannot hide its stall by slowing
  the client down (no coordinated omission).

Each run is bounded by a request count and a wall-clock deadline and prints
one JSON object (latency percentiles in milliseconds, throughput, errors).

Run: ``python benchmarks/loadgen.py --url http://127.0.0.1:9100/v1/chat/completions
--requests 2000 --concurrency 16 [--stream] [--rate 500] [--key ph-...]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import httptools
import orjson

PROMPT = [{"role": "user", "content": "Say hello in five words."}]


@dataclass
class Sample:
    """What one request produced; times are perf_counter_ns values."""

    status: int
    ok: bool
    sent_ns: int
    first_byte_ns: int
    end_ns: int


class ClientConnection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, expect_stream: bool, end_marker: bytes = b"[DONE]") -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.expect_stream = expect_stream
        self.end_marker = end_marker
        self.ended = False
        self.waiter: asyncio.Future[Sample] | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent_ns = 0
        self.first_byte_ns = 0
        self.tail = b""
        self.ended = False
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.keep_alive = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        if not self.first_byte_ns:
            self.first_byte_ns = time.perf_counter_ns()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(exc)

    def on_body(self, body: bytes) -> None:
        # Keep only the end of the body: enough to see the stream's end marker arrive.
        window = self.tail + body
        self.ended = self.ended or self.end_marker in window
        self.tail = window[-64:]

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        ok = status == 200 and (not self.expect_stream or self.ended)
        self.keep_alive = self.parser.should_keep_alive()
        if self.waiter is not None and not self.waiter.done():
            end = time.perf_counter_ns()
            self.waiter.set_result(Sample(status, ok, self.sent_ns, self.first_byte_ns, end))

    async def send(self, payload: bytes) -> Sample:
        assert self.transport is not None and self.keep_alive
        self.waiter = asyncio.get_running_loop().create_future()
        self.first_byte_ns = 0
        self.tail = b""
        self.ended = False
        self.sent_ns = time.perf_counter_ns()
        self.transport.write(payload)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def request_body(api: str, model: str, stream: bool) -> tuple[dict[str, Any], bytes]:
    """The same small request in each API's shape, and the bytes that end its stream."""
    text = PROMPT[0]["content"]
    if api == "responses":
        body: dict[str, Any] = {"model": model, "input": text, "max_output_tokens": 16}
        return ({**body, "stream": True} if stream else body), b"response.completed"
    if api == "messages":
        body = {"model": model, "messages": PROMPT, "max_tokens": 16}
        return ({**body, "stream": True} if stream else body), b"message_stop"
    body = {"model": model, "messages": PROMPT, "max_tokens": 16}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body, b"[DONE]"


@dataclass(frozen=True)
class Target:
    """Where to send requests and the exact bytes of one request."""

    host: str
    port: int
    payload: bytes
    stream: bool
    end_marker: bytes = b"[DONE]"

    @classmethod
    def build(
        cls, url: str, model: str, key: str | None, stream: bool, api: str = "chat"
    ) -> Target:
        parts = urlsplit(url)
        body, end_marker = request_body(api, model, stream)
        raw = orjson.dumps(body)
        headers = [
            f"POST {parts.path} HTTP/1.1",
            f"Host: {parts.netloc}",
            "Content-Type: application/json",
            "Accept: text/event-stream" if stream else "Accept: application/json",
            f"Content-Length: {len(raw)}",
        ]
        if key:
            headers.append(f"Authorization: Bearer {key}")
        head = ("\r\n".join(headers) + "\r\n\r\n").encode()
        host = parts.hostname or "127.0.0.1"
        return cls(host, parts.port or 80, head + raw, stream, end_marker)

    async def connect(self) -> ClientConnection:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(
            lambda: ClientConnection(self.stream, self.end_marker), self.host, self.port
        )
        return proto


@dataclass
class Recorder:
    """Collects per-request latencies; percentiles are computed once at the end."""

    latencies: list[int] = field(default_factory=list)
    ttfbs: list[int] = field(default_factory=list)
    service: list[int] = field(default_factory=list)
    lateness: list[int] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)

    def add(self, start_ns: int, sample: Sample) -> None:
        self.statuses[sample.status] += 1
        if not sample.ok:
            self.errors += 1
        self.latencies.append(sample.end_ns - start_ns)
        self.ttfbs.append(sample.first_byte_ns - start_ns)
        self.service.append(sample.end_ns - sample.sent_ns)

    def fail(self, exc: BaseException) -> None:
        self.errors += 1
        self.statuses[0] += 1
        if len(self.error_examples) < 3:
            self.error_examples.append(repr(exc)[:200])


async def request_once(target: Target, conn: ClientConnection) -> tuple[Sample, ClientConnection]:
    """Send one request; reconnect first if the server closed the connection."""
    if not conn.keep_alive:
        conn.close()
        conn = await target.connect()
    return await conn.send(target.payload), conn


async def closed_worker(target: Target, rec: Recorder | None, count: int, deadline: float) -> None:
    """Sequential requests on one connection; ``rec=None`` means warm-up."""
    conn = await target.connect()
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            start = time.perf_counter_ns()
            try:
                sample, conn = await request_once(target, conn)
            except (ConnectionError, OSError, httptools.HttpParserError) as exc:
                if rec is not None:
                    rec.fail(exc)
                conn.close()
                conn = await target.connect()
                continue
            if rec is not None:
                rec.add(start, sample)
    finally:
        conn.close()


async def run_closed(
    target: Target, rec: Recorder | None, requests: int, concurrency: int, deadline: float
) -> None:
    """Split ``requests`` over ``concurrency`` closed-loop workers."""
    share, extra = divmod(requests, concurrency)
    counts = [share + (1 if i < extra else 0) for i in range(concurrency)]
    await asyncio.gather(*(closed_worker(target, rec, n, deadline) for n in counts if n))


async def open_request(
    target: Target, pool: asyncio.Queue[ClientConnection], rec: Recorder, scheduled_ns: int
) -> None:
    """One open-loop request; waiting for a free connection counts as latency."""
    conn = await pool.get()
    try:
        sample, conn = await request_once(target, conn)
        rec.add(scheduled_ns, sample)
    except (ConnectionError, OSError, httptools.HttpParserError) as exc:
        rec.fail(exc)
        conn.close()
        conn = await target.connect()
    finally:
        pool.put_nowait(conn)


def pace(
    loop: asyncio.AbstractEventLoop,
    fire: Callable[[int], None],
    schedule: Schedule,
    stop: threading.Event,
) -> None:
    """Pacer thread: wake at each scheduled time and hand the request to the loop.

    Event-loop timers have millisecond granularity, which would add up to 1 ms
    of client lateness to every open-loop sample; ``time.sleep`` is
    clock_nanosleep with ~50 us slack, and the loop sleeps in epoll with the
    GIL released, so the hand-off is prompt.
    """
    for i in range(schedule.count):
        due = schedule.start_ns + i * schedule.interval_ns
        delay = due - time.perf_counter_ns()
        if delay > 0:
            time.sleep(delay / 1e9)
        if stop.is_set():
            return
        loop.call_soon_threadsafe(fire, due)


@dataclass(frozen=True)
class Schedule:
    start_ns: int
    interval_ns: int
    count: int


async def run_open(
    target: Target, rec: Recorder, requests: int, rate: float, connections: int, deadline: float
) -> tuple[int, int]:
    """Fire requests on a fixed schedule; returns (never sent, sent but unfinished)."""
    loop = asyncio.get_running_loop()
    pool: asyncio.Queue[ClientConnection] = asyncio.Queue()
    for conn in await asyncio.gather(*(target.connect() for _ in range(connections))):
        pool.put_nowait(conn)
    tasks: set[asyncio.Task[None]] = set()

    def fire(due_ns: int) -> None:
        rec.lateness.append(time.perf_counter_ns() - due_ns)
        task = loop.create_task(open_request(target, pool, rec, due_ns))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    schedule = Schedule(time.perf_counter_ns() + 1_000_000, int(1e9 / rate), requests)
    stop = threading.Event()
    pacer = loop.run_in_executor(None, pace, loop, fire, schedule, stop)
    try:
        await asyncio.wait_for(asyncio.shield(pacer), max(0.1, deadline - time.monotonic()))
    except TimeoutError:
        stop.set()
        await pacer
    await asyncio.sleep(0)  # let the last call_soon_threadsafe callbacks run
    sent = len(rec.lateness)
    unfinished = 0
    if tasks:
        _, pending = await asyncio.wait(set(tasks), timeout=max(0.1, deadline - time.monotonic()))
        for task in pending:
            task.cancel()
        unfinished = len(pending)
    while not pool.empty():
        pool.get_nowait().close()
    return requests - sent, unfinished


def percentile(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile in milliseconds."""
    if not sorted_ns:
        return float("nan")
    rank = max(0, min(len(sorted_ns) - 1, round(q / 100 * len(sorted_ns) + 0.5) - 1))
    return sorted_ns[rank] / 1e6


def summarise(rec: Recorder, elapsed_s: float, stream: bool, open_loop: bool) -> dict[str, Any]:
    """Turn raw samples into the JSON the orchestrator consumes."""
    lat = sorted(rec.latencies)
    out: dict[str, Any] = {
        "completed": len(lat),
        "errors": rec.errors,
        "statuses": {str(k): v for k, v in sorted(rec.statuses.items())},
        "elapsed_s": round(elapsed_s, 3),
        "rps": round(len(lat) / elapsed_s, 1) if elapsed_s else 0.0,
        "latency_ms": {f"p{q:g}": round(percentile(lat, q), 3) for q in (50, 90, 99, 99.9)}
        | {
            "mean": round(sum(lat) / len(lat) / 1e6, 3) if lat else float("nan"),
            "max": round(lat[-1] / 1e6, 3) if lat else float("nan"),
        },
    }
    if stream:
        ttfb = sorted(rec.ttfbs)
        out["ttfb_ms"] = {f"p{q:g}": round(percentile(ttfb, q), 3) for q in (50, 99)}
    if open_loop:  # from the actual write, i.e. without the client's pacing lateness
        svc = sorted(rec.service)
        out["service_ms"] = {f"p{q:g}": round(percentile(svc, q), 3) for q in (50, 90, 99)}
        late = sorted(rec.lateness)
        out["pacing_lateness_ms"] = {f"p{q:g}": round(percentile(late, q), 3) for q in (50, 99)}
    if rec.error_examples:
        out["error_examples"] = rec.error_examples
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Warm up, then measure one load pattern against one target."""
    target = Target.build(args.url, args.model, args.key, args.stream, args.api)
    deadline = time.monotonic() + args.max_seconds
    warmup = min(args.warmup, args.requests)
    await run_closed(target, None, warmup, max(1, min(args.concurrency, warmup)), deadline)
    rec = Recorder()
    gc.collect()
    gc.disable()  # a client GC pause would be charged to the server
    started = time.perf_counter()
    unsent = unfinished = 0
    if args.rate:
        unsent, unfinished = await run_open(
            target, rec, args.requests, args.rate, args.connections, deadline
        )
    else:
        await run_closed(target, rec, args.requests, args.concurrency, deadline)
    elapsed = time.perf_counter() - started
    gc.enable()
    result = summarise(rec, elapsed, args.stream, bool(args.rate))
    if args.rate:
        result |= {"unsent": unsent, "unfinished": unfinished}
    else:  # a closed loop ends early only at the wall-clock cap; that is not an error
        result["stopped_at_deadline"] = len(rec.latencies) + rec.statuses[0] < args.requests
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Closed/open-loop HTTP load for chat completions.")
    p.add_argument("--url", required=True)
    p.add_argument("--model", default="bench")
    p.add_argument("--key", default=None, help="sent as Authorization: Bearer KEY")
    p.add_argument("--stream", action="store_true")
    p.add_argument("--api", choices=["chat", "responses", "messages"], default="chat")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=1, help="closed-loop workers")
    p.add_argument("--rate", type=float, default=0.0, help="open loop: requests per second")
    p.add_argument("--connections", type=int, default=64, help="open loop: connection pool")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--max-seconds", type=float, default=300.0, help="hard wall-clock cap")
    return p.parse_args(argv)


def run_fast(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run on uvloop when installed: it halves the client's own cost."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> None:
    result = run_fast(run(parse_args(argv)))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
