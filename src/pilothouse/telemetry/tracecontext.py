"""W3C trace context: honour an incoming ``traceparent``, otherwise start a trace."""

from __future__ import annotations

import re

from pilothouse.ids import random_hex

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def new_trace_id() -> str:
    return random_hex(16)


def new_span_id() -> str:
    return random_hex(8)


def parse_traceparent(value: str | None) -> tuple[str, str | None]:
    """(trace id, parent span id) from a ``traceparent`` header; a fresh trace if invalid."""
    if value:
        match = _TRACEPARENT.match(value.strip().lower())
        if match and match.group(1) != _ZERO_TRACE and match.group(2) != _ZERO_SPAN:
            return match.group(1), match.group(2)
    return new_trace_id(), None
