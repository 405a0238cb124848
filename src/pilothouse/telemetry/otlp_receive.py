"""The OTLP/HTTP trace receiver: applications' spans (protobuf or JSON) → span rows."""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from pilothouse.errors import InvalidRequestError
from pilothouse.inputs import INT64_MAX, JsonLimits, check_depth, decode

_KINDS = {0: "internal", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS = {0: "unset", 1: "ok", 2: "error"}


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, which)


def _hex_ids_to_base64(obj: Any) -> Any:
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping expects base64 bytes."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str) and value:
                try:
                    value = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise InvalidRequestError(f"`{key}` must be hex, got {value!r}") from None
            out[key] = _hex_ids_to_base64(value)
        return out
    if isinstance(obj, list):
        return [_hex_ids_to_base64(v) for v in obj]
    return obj


def parse_request(
    body: bytes, content_type: str, limits: JsonLimits | None = None
) -> ExportTraceServiceRequest:
    """Decode an export request; JSON goes through the shared size and depth limits."""
    message = ExportTraceServiceRequest()
    if "json" in content_type:
        raw = decode(body, limits or JsonLimits(), "OTLP/JSON body")
        if not isinstance(raw, dict):
            raise InvalidRequestError("OTLP/JSON body must be a JSON object")
        try:
            json_format.ParseDict(_hex_ids_to_base64(raw), message, ignore_unknown_fields=True)
        except (json_format.ParseError, TypeError, ValueError) as exc:
            # TypeError: a value of the wrong JSON type where protobuf expects a message.
            raise InvalidRequestError(f"invalid OTLP/JSON body: {exc}") from None
        return message
    if "protobuf" not in content_type:
        raise InvalidRequestError("Content-Type must be application/x-protobuf or application/json")
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise InvalidRequestError(f"invalid OTLP protobuf body: {exc}") from None
    return message


def _text(value: str, limit: int) -> str:
    """Span names and messages go to text columns, which cannot hold NUL on PostgreSQL."""
    return value.replace("\x00", "")[:limit]


def _nanos(value: int, param: str) -> int:
    """OTLP times are fixed64; the store's columns are signed 64-bit."""
    if value > INT64_MAX:
        raise InvalidRequestError(f"`{param}` must be below 2^63 nanoseconds", param=param)
    return value


def span_rows(
    message: ExportTraceServiceRequest, limits: JsonLimits | None = None
) -> list[dict[str, Any]]:
    """One row per span; times and attribute nesting checked so every row is storable."""
    max_depth = (limits or JsonLimits()).max_depth
    rows = []
    for resource_spans in message.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        service = resource.get("service.name")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if len(span.trace_id) != 16 or len(span.span_id) != 8:
                    raise InvalidRequestError(
                        "every span needs a 16-byte traceId and 8-byte spanId"
                    )
                attributes = {kv.key: _value(kv.value) for kv in span.attributes}
                events = [
                    {
                        "name": e.name,
                        "time_ns": e.time_unix_nano,
                        "attributes": {kv.key: _value(kv.value) for kv in e.attributes},
                    }
                    for e in span.events
                ]
                check_depth(attributes, max_depth, "attributes")
                check_depth(events, max_depth, "events")
                start = _nanos(span.start_time_unix_nano, "startTimeUnixNano")
                end = _nanos(span.end_time_unix_nano, "endTimeUnixNano")
                if service and "service.name" not in attributes:
                    attributes["service.name"] = service
                rows.append(
                    {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex() or None,
                        "name": _text(span.name, 300) or "(unnamed)",
                        "kind": _KINDS.get(span.kind, "internal"),
                        "source": "app",
                        "start_ns": start,
                        "end_ns": max(end, start),
                        "status": _STATUS.get(span.status.code, "unset"),
                        "status_message": _text(span.status.message, 500) or None,
                        "attributes": attributes,
                        "events": events,
                    }
                )
    return rows
