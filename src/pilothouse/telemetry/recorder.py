"""The trace writer: requests become traces and spans off the hot path.

``record`` only appends to a bounded queue (a full queue drops the trace and
counts it — never silently). One supervised background task, on the
dedicated writer thread when one is given (``store/writer_thread.py``),
builds and redacts the rows, writes batches to the store and hands them to
the OTLP exporter in a worker thread, so a slow collector never slows a request.

Each trace (its row plus its spans) is written or refused as a unit: a batch
the store refuses is split until only the bad trace fails, and that one is
quarantined and counted. While the store is down traces go to a bounded
spool next to the usage spool (drops counted in
``pilothouse_queue_dropped_total{queue="traces"}``) and are replayed, idempotently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.config.schema import TelemetryConfig
from pilothouse.gateway.context import RequestContext
from pilothouse.guard.redact import Redactor
from pilothouse.store.batch import WriterHealth, store_answers, supervise, write_isolated
from pilothouse.store.raw_insert import RawInsert
from pilothouse.store.search_index import index_pending
from pilothouse.store.spool import Quarantine, Spool, parse_datetimes, quarantine_path
from pilothouse.store.tables import spans, traces
from pilothouse.store.writer_thread import Handoff, InlineWriter, WriterLoop
from pilothouse.telemetry.otlp_export import OtlpExporter
from pilothouse.telemetry.spans import build_spans, trace_row

log = logging.getLogger("pilothouse.traces")
CPU_SLICE_S = 0.001  # longest stretch of trace building between yields to the event loop
MAX_BATCH_SPANS = 500
TRACES_PER_BATCH = 100  # a full batch ends the writer's wait before flush_interval_s
WRITE_CHUNK = 50  # rows per INSERT statement
QUEUE = "traces"
Item = tuple[RequestContext, float] | list[dict[str, Any]]
#: One unit of writing: a trace row (None for spans an application sent) and its spans.
Group = dict[str, Any]


def _decode(group: Any) -> Group:
    if not isinstance(group, dict) or not isinstance(group.get("spans"), list):
        raise TypeError("not a spooled trace")
    if group.get("trace") is not None:
        parse_datetimes(group["trace"], ("created_at",))
    return group


def trace_spool_path(usage_spool: str | Path) -> Path:
    """``./pilothouse-spool.jsonl`` -> ``./pilothouse-spool.traces.jsonl``."""
    path = Path(usage_spool)
    return path.with_name(path.stem + ".traces.jsonl")


class TraceRecorder:
    def __init__(
        self,
        engine: AsyncEngine,
        config: TelemetryConfig,
        on_drop: Callable[[int], None] | None = None,
        *,
        spool_path: str | Path = "./pilothouse-spool.traces.jsonl",
        quarantine: Quarantine | None = None,
        stall_after_s: float = 30.0,
        replay_interval_s: float = 2.0,
        writer: WriterLoop | None = None,
    ) -> None:
        self.engine = engine
        self.writer: WriterLoop = writer or InlineWriter(engine)
        self.config = config
        self.redactor = Redactor(config.redaction)
        self.queue: Handoff[Item] = Handoff(config.queue_size)
        self.dropped = 0
        self.written = 0
        self.exported = 0
        self.export_failures = 0
        self.store_ok = True
        self.on_drop = on_drop
        self.quarantine = quarantine or Quarantine(quarantine_path(spool_path))
        self.spool = Spool(
            spool_path,
            QUEUE,
            self.quarantine,
            max_bytes=config.spool_max_bytes,
            on_drop=lambda _queue, n: self._count_drop(n),
        )
        self.health = WriterHealth("traces", stall_after_s, alive=self.writer.alive)
        self.replay_interval_s = replay_interval_s
        self._replay_task: asyncio.Task[None] | None = None
        self._replay_lock = asyncio.Lock()
        # Held while a batch is built and written, so flush() also waits for the batch the
        # background writer already took off the queue (an empty queue is not "written").
        self._drain_lock = asyncio.Lock()
        self._exporter: OtlpExporter | None = None
        if config.otlp_endpoint:
            headers = {k: v.get() for k, v in config.otlp_headers.items()}
            self._exporter = OtlpExporter(config.otlp_endpoint, headers, "pilothouse-gateway")
        self._insert_trace = RawInsert(traces, engine.dialect, ["trace_id"])
        self._insert_span = RawInsert(spans, engine.dialect, ["trace_id", "span_id"])

    # -- producers ----------------------------------------------------------------------

    def record(self, ctx: RequestContext) -> None:
        """Queue a finished request (cheap: no span is built here)."""
        self._put((ctx, time.perf_counter()))

    def record_app_spans(self, rows: list[dict[str, Any]]) -> None:
        """Queue spans an application sent to the OTLP receiver."""
        self._put(rows)

    def _put(self, item: Item) -> None:
        if not self.queue.put_nowait(item):
            self._count_drop(1)

    def _count_drop(self, n: int) -> None:
        self.dropped += n
        if self.on_drop is not None:
            self.on_drop(n)

    def health_check(self) -> str:
        return self.health.check(self.queue.qsize())

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await self.writer.call(self._start())

    async def _start(self) -> None:
        self.queue.bind()
        self._replay_lock = asyncio.Lock()
        self._drain_lock = asyncio.Lock()
        self.health.stopping = False
        self.health.task = asyncio.create_task(
            supervise(self.health, self._run, self._on_crash), name="trace-writer"
        )
        self._replay_task = asyncio.create_task(self._replay_loop(), name="trace-replay")

    async def restart(self) -> None:
        """The writer thread died and a new one runs (a batch it was building is lost)."""
        await self.writer.call(self._start())

    async def flush(self) -> None:
        """Write everything queued so far (tests and admin reads call this)."""
        if self.writer.alive():
            await self.writer.call(self._flush())

    async def _flush(self) -> None:
        while True:  # the lock is let go between batches, so the writer task can run
            async with self._drain_lock:
                if self.queue.empty():
                    return
                await self._drain_once()

    async def stop(self) -> None:
        """Write (or spool) what is queued, then stop. Never raises."""
        try:
            await self.writer.call(self._stop())
        except Exception:
            log.exception(
                "trace writer unavailable at shutdown; %d traces left unwritten", self.queue.qsize()
            )

    async def _stop(self) -> None:
        self.health.stopping = True
        for task in (self.health.task, self._replay_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._replay_task = None
        try:
            await self._flush()
            await self._replay()
        except Exception:
            log.exception("trace drain failed; %d traces left unwritten", self.queue.qsize())
        if self._exporter is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._exporter.shutdown)

    async def _run(self) -> None:
        while True:
            self.health.beat()
            await self.queue.wait(1)
            self.health.beat()
            # The batch window ends early once a batch is queued, so a backlog drains
            # batch after batch. (Sleeping the window after every batch capped the
            # writer at one batch per interval, a few hundred traces/s, and the queue
            # grew without bound at higher rates.)
            await self.queue.wait(TRACES_PER_BATCH, self.config.flush_interval_s)
            async with self._drain_lock:
                await self._drain_once()

    async def _on_crash(self, exc: BaseException) -> None:
        """Nothing to recover: a batch being built is lost only if building itself crashed."""

    async def _drain_once(self, first: Item | None = None) -> None:
        """Build, redact and write one batch, yielding to requests every ~1 ms of work.

        Building a trace costs a few hundred microseconds; done for a whole
        batch in one go it would stall every request on this event loop.
        """
        groups: list[Group] = []
        n_spans = 0
        pending = [first] if first is not None else []
        slice_start = time.perf_counter()
        while (pending or not self.queue.empty()) and n_spans < MAX_BATCH_SPANS:
            if time.perf_counter() - slice_start > CPU_SLICE_S:
                await asyncio.sleep(0)
                slice_start = time.perf_counter()
            item = pending.pop() if pending else self.queue.get_nowait()
            built: list[Group]
            try:
                if isinstance(item, list):
                    built = [{"trace": None, "spans": [row]} for row in self._redact_spans(item)]
                else:
                    ctx, end_mark = item
                    row = trace_row(ctx, end_mark - ctx.started, self._content(ctx))
                    built = [{"trace": row, "spans": self._gateway_spans(ctx, end_mark)}]
            except Exception as exc:  # a malformed context must not stop the writer
                log.exception("could not build a trace")
                self.quarantine.add(QUEUE, f"cannot build trace: {type(exc).__name__}: {exc}")
                continue
            groups.extend(built)
            n_spans += sum(len(g["spans"]) for g in built)
        if groups:
            stored = await self._write(groups)
            if self._exporter is not None and stored:
                trace_rows = [g["trace"] for g in stored if g["trace"] is not None]
                span_rows = [s for g in stored for s in g["spans"]]
                if span_rows:
                    await self._export(trace_rows, span_rows)

    # -- content ------------------------------------------------------------------------

    def _content(self, ctx: RequestContext) -> dict[str, Any] | None:
        mode = self.config.capture_content
        if mode == "none":
            return None
        content = {"request": ctx.request_body, "response": ctx.response_body}
        if mode == "redacted":
            redacted, _counts = self.redactor.redact_obj(content)
            return dict(redacted)
        return content

    def _gateway_spans(self, ctx: RequestContext, end_mark: float) -> list[dict[str, Any]]:
        """The gateway's spans; a retrieval query is content and follows capture_content."""
        rows = build_spans(ctx, end_mark)
        if not ctx.retrievals or self.config.capture_content == "full":
            return rows
        from pilothouse.rag.trace import QUERY_ATTR

        out = []
        for row in rows:
            attrs = row["attributes"]
            if QUERY_ATTR in attrs:
                if self.config.capture_content == "none":
                    attrs = {k: v for k, v in attrs.items() if k != QUERY_ATTR}
                else:
                    redacted, _ = self.redactor.redact_obj({QUERY_ATTR: attrs[QUERY_ATTR]})
                    attrs = {**attrs, QUERY_ATTR: redacted[QUERY_ATTR]}
                row = {**row, "attributes": attrs}
            out.append(row)
        return out

    def _redact_spans(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.config.capture_content == "full":
            return rows
        out = []
        for row in rows:
            attrs, _ = self.redactor.redact_obj(row.get("attributes") or {})
            events, _ = self.redactor.redact_obj(row.get("events") or [])
            out.append({**row, "attributes": attrs, "events": events})
        return out

    # -- sinks --------------------------------------------------------------------------

    async def _insert_groups(self, groups: list[Group]) -> None:
        trace_rows = [g["trace"] for g in groups if g["trace"] is not None]
        span_rows = [s for g in groups for s in g["spans"]]
        async with self.writer.engine.begin() as conn:
            # Small statements: parameters are converted on the event loop, so one
            # huge executemany would stall requests for milliseconds.
            for statement, rows in (
                (self._insert_trace, trace_rows),
                (self._insert_span, span_rows),
            ):
                for start in range(0, len(rows), WRITE_CHUNK):
                    await statement.execute(conn, rows[start : start + WRITE_CHUNK])
            if trace_rows:  # the batch is searchable when it commits (SQLite; else a no-op)
                await index_pending(conn)

    async def _probe(self) -> bool:
        return await store_answers(self.writer.engine)

    async def _write(self, groups: list[Group]) -> list[Group]:
        """Store groups; quarantine the ones the store refuses, spool on an outage.

        Returns the groups that are stored or spooled (what may be exported).
        """
        out = await write_isolated(groups, self._insert_groups, self._probe)
        self.written += sum(1 for g in out.written if g["trace"] is not None)
        for group, reason in out.bad:
            self.quarantine.add(QUEUE, reason, row=group)
        if out.unwritten:
            if self.store_ok:
                log.warning("trace store unreachable; spooling to %s", self.spool.path)
            self.store_ok = False
            lines = self.spool.encode(out.unwritten)
            try:
                await asyncio.to_thread(self.spool.append, lines)
            except Exception as exc:
                log.error("cannot write trace spool %s: %s", self.spool.path, exc)
                self._count_drop(len(lines))
        elif out.written:
            self.store_ok = True
        return out.written + out.unwritten

    # -- replay -------------------------------------------------------------------------

    async def _replay_loop(self) -> None:
        while True:
            if self.spool.pending():
                try:
                    await self._replay()
                except Exception:
                    log.exception("trace spool replay failed; will retry")
            await asyncio.sleep(self.replay_interval_s)

    async def replay(self) -> int:
        """Store spooled traces on the writer's loop; see :meth:`_replay`."""
        return await self.writer.call(self._replay())

    async def _replay(self) -> int:
        """Store spooled traces (idempotent); bad lines and rows are quarantined."""
        total = 0
        async with self._replay_lock:
            while True:
                working = await asyncio.to_thread(self.spool.take)
                if working is None:
                    break
                groups, bad = await asyncio.to_thread(self.spool.read, working, _decode)
                for line, reason in bad:
                    self.quarantine.add(QUEUE, reason, line=line)
                out = await write_isolated(groups, self._insert_groups, self._probe)
                for group, reason in out.bad:
                    self.quarantine.add(QUEUE, reason, row=group)
                total += len(out.written)
                self.written += sum(1 for g in out.written if g["trace"] is not None)
                if out.unwritten:
                    if out.written or out.bad:
                        lines = self.spool.encode(out.unwritten)
                        await asyncio.to_thread(self.spool.keep, working, lines)
                    self.store_ok = False
                    break
                await asyncio.to_thread(self.spool.finish, working)
                self.store_ok = True
        if total:
            log.info("replayed %d spooled trace groups", total)
        return total

    async def _export(
        self, trace_rows: list[dict[str, Any]], span_rows: list[dict[str, Any]]
    ) -> None:
        assert self._exporter is not None
        rows = span_rows
        if self.config.capture_content != "none":
            rows = _with_content_attributes(span_rows, trace_rows)
        try:
            ok = await asyncio.to_thread(self._exporter.export, rows)
        except Exception as exc:
            ok = False
            log.warning("OTLP export failed: %s", exc)
        if ok:
            self.exported += len(rows)
        else:
            self.export_failures += len(rows)


def _with_content_attributes(
    span_rows: list[dict[str, Any]], trace_rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Attach (already redacted) prompt and completion to each root span for export."""
    import orjson

    content = {t["trace_id"]: t.get("content") for t in trace_rows if t.get("content")}
    out = []
    for row in span_rows:
        body = content.get(row["trace_id"])
        if body and row.get("kind") == "server" and row.get("source") == "gateway":
            request = body.get("request") or {}
            attrs = dict(row.get("attributes") or {})
            if request.get("messages") is not None:
                attrs["gen_ai.input.messages"] = orjson.dumps(request["messages"]).decode()
            if body.get("response") is not None:
                attrs["gen_ai.output.messages"] = orjson.dumps(body["response"]).decode()
            row = {**row, "attributes": attrs}
        out.append(row)
    return out
