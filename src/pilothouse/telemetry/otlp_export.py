"""Export stored span rows over OTLP/HTTP with the OpenTelemetry SDK's exporter."""

from __future__ import annotations

from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from pilothouse import __version__

_KINDS = {
    "server": SpanKind.SERVER,
    "client": SpanKind.CLIENT,
    "internal": SpanKind.INTERNAL,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
}
_STATUS = {"ok": StatusCode.OK, "error": StatusCode.ERROR, "unset": StatusCode.UNSET}
_SCOPE = InstrumentationScope("pilothouse", __version__)


def _attr_value(value: Any) -> Any:
    """OTLP attributes are scalars or homogeneous scalar lists; anything else as text."""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    import orjson

    return orjson.dumps(value).decode()


def to_readable(row: dict[str, Any], resource: Resource) -> ReadableSpan:
    trace_id = int(row["trace_id"], 16)
    context = SpanContext(trace_id, int(row["span_id"], 16), False, TraceFlags(1))
    parent = None
    if row.get("parent_span_id"):
        parent = SpanContext(trace_id, int(row["parent_span_id"], 16), False, TraceFlags(1))
    attributes = {k: _attr_value(v) for k, v in (row.get("attributes") or {}).items()}
    events = [
        Event(
            e["name"],
            {k: _attr_value(v) for k, v in (e.get("attributes") or {}).items()},
            e.get("time_ns"),
        )
        for e in row.get("events") or []
    ]
    return ReadableSpan(
        name=row["name"],
        context=context,
        parent=parent,
        resource=resource,
        attributes=attributes,
        events=events,
        kind=_KINDS.get(row.get("kind", "internal"), SpanKind.INTERNAL),
        status=Status(
            _STATUS.get(row.get("status", "unset"), StatusCode.UNSET), row.get("status_message")
        ),
        start_time=row["start_ns"],
        end_time=row["end_ns"],
        instrumentation_scope=_SCOPE,
    )


class OtlpExporter:
    """Blocking exporter: call :meth:`export` from a worker thread, never the event loop."""

    def __init__(self, endpoint: str, headers: dict[str, str], service_name: str) -> None:
        url = endpoint.rstrip("/")
        if not url.endswith("/v1/traces"):
            url += "/v1/traces"
        self._exporter = OTLPSpanExporter(endpoint=url, headers=headers, timeout=10)
        self._resource = Resource.create({"service.name": service_name})

    def export(self, rows: list[dict[str, Any]]) -> bool:
        spans = [to_readable(r, self._resource) for r in rows]
        return self._exporter.export(spans) == SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._exporter.shutdown()  # type: ignore[no-untyped-call]
