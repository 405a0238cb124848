"""The trace writer: requests become traces and spans off the hot path.

``record`` only appends to a bounded queue (a full queue drops the trace and
counts it — never silently). One background task redacts content, writes
batches to the store and hands them to the OTLP exporter in a worker thread,
so a slow collector never slows a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.config.schema import TelemetryConfig
from pilothouse.gateway.context import RequestContext
from pilothouse.guard.redact import Redactor
from pilothouse.store.tables import spans, traces
from pilothouse.telemetry.otlp_export import OtlpExporter
from pilothouse.telemetry.spans import build_spans, trace_row

log = logging.getLogger("pilothouse.traces")
CPU_SLICE_S = 0.001  # longest stretch of trace building between yields to the event loop
MAX_BATCH_SPANS = 500
WRITE_CHUNK = 50  # rows per INSERT statement
Item = tuple[RequestContext, float] | list[dict[str, Any]]


class TraceRecorder:
    def __init__(
        self,
        engine: AsyncEngine,
        config: TelemetryConfig,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.redactor = Redactor(config.redaction)
        self.queue: asyncio.Queue[Item] = asyncio.Queue(config.queue_size)
        self.dropped = 0
        self.exported = 0
        self.export_failures = 0
        self.on_drop = on_drop
        self._task: asyncio.Task[None] | None = None
        self._exporter: OtlpExporter | None = None
        if config.otlp_endpoint:
            headers = {k: v.get() for k, v in config.otlp_headers.items()}
            self._exporter = OtlpExporter(config.otlp_endpoint, headers, "pilothouse-gateway")
        pg = engine.dialect.name == "postgresql"
        insert = postgresql.insert if pg else sqlite.insert
        self._insert_trace = insert(traces).on_conflict_do_nothing(index_elements=["trace_id"])
        self._insert_span = insert(spans).on_conflict_do_nothing(
            index_elements=["trace_id", "span_id"]
        )

    # -- producers ----------------------------------------------------------------------

    def record(self, ctx: RequestContext) -> None:
        """Queue a finished request (cheap: no span is built here)."""
        self._put((ctx, time.perf_counter()))

    def record_app_spans(self, rows: list[dict[str, Any]]) -> None:
        """Queue spans an application sent to the OTLP receiver."""
        self._put(rows)

    def _put(self, item: Item) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.on_drop is not None:
                self.on_drop(1)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="trace-writer")

    async def flush(self) -> None:
        """Write everything queued so far (tests and admin reads call this)."""
        while not self.queue.empty():
            await self._drain_once()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        if self._exporter is not None:
            await asyncio.to_thread(self._exporter.shutdown)

    async def _run(self) -> None:
        while True:
            first = await self.queue.get()
            await self._drain_once(first)
            await asyncio.sleep(self.config.flush_interval_s)  # batch the next writes

    async def _drain_once(self, first: Item | None = None) -> None:
        """Build, redact and write one batch, yielding to requests every ~1 ms of work.

        Building a trace costs a few hundred microseconds; done for a whole
        batch in one go it would stall every request on this event loop.
        """
        trace_rows: list[dict[str, Any]] = []
        span_rows: list[dict[str, Any]] = []
        pending = [first] if first is not None else []
        slice_start = time.perf_counter()
        while (pending or not self.queue.empty()) and len(span_rows) < MAX_BATCH_SPANS:
            if time.perf_counter() - slice_start > CPU_SLICE_S:
                await asyncio.sleep(0)
                slice_start = time.perf_counter()
            item = pending.pop() if pending else self.queue.get_nowait()
            if isinstance(item, list):
                span_rows.extend(self._redact_spans(item))
                continue
            ctx, end_mark = item
            try:
                built = build_spans(ctx, end_mark)
                trace_rows.append(trace_row(ctx, end_mark - ctx.started, self._content(ctx)))
            except Exception:  # a malformed context must not stop the writer
                log.exception("could not build trace for %s", ctx.request_id)
                continue
            span_rows.extend(built)
        if trace_rows or span_rows:
            await self._write(trace_rows, span_rows)
            if self._exporter is not None and span_rows:
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

    async def _write(
        self, trace_rows: list[dict[str, Any]], span_rows: list[dict[str, Any]]
    ) -> None:
        try:
            async with self.engine.begin() as conn:
                # Small statements: SQLAlchemy prepares parameters on the event loop,
                # so one huge executemany would stall requests for milliseconds.
                for statement, rows in (
                    (self._insert_trace, trace_rows),
                    (self._insert_span, span_rows),
                ):
                    for start in range(0, len(rows), WRITE_CHUNK):
                        await conn.execute(statement, rows[start : start + WRITE_CHUNK])
        except Exception as exc:
            self.dropped += len(trace_rows) or 1
            if self.on_drop is not None:
                self.on_drop(len(trace_rows) or 1)
            log.warning("could not store %d traces: %s", len(trace_rows), exc)

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
