"""Hot-path ids: request ids are real ULIDs (parseable, time-ordered, unique, distinct
across forks); trace and span ids are valid W3C trace context."""

from __future__ import annotations

import os
import time

from ulid import ULID

from pilothouse.ids import random_hex, ulid
from pilothouse.telemetry.tracecontext import new_span_id, new_trace_id, parse_traceparent


def test_a_request_id_is_a_ulid_of_now() -> None:
    before = time.time()
    value = ulid()
    after = time.time()
    assert len(value) == 26 and value == value.lower()
    parsed = ULID.from_str(value.upper())  # python-ulid reads it back
    assert before - 0.001 <= parsed.timestamp <= after + 0.001
    assert str(parsed).lower() == value


def test_ids_are_unique_and_sort_by_time() -> None:
    ids = [ulid() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    stamps = [ULID.from_str(i.upper()).milliseconds for i in ids]
    assert stamps == sorted(stamps)


def test_a_forked_child_draws_other_ids() -> None:
    ulid()  # the parent's generator exists before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, "".join(ulid()[10:] for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 1000).decode()
    os.waitpid(pid, 0)
    os.close(read)
    parent = "".join(ulid()[10:] for _ in range(5))
    assert len(child) == 80 and child != parent


def test_trace_and_span_ids_are_valid_trace_context() -> None:
    traces = {new_trace_id() for _ in range(5_000)}
    spans = {new_span_id() for _ in range(5_000)}
    assert len(traces) == 5_000 and len(spans) == 5_000
    assert all(len(t) == 32 and int(t, 16) > 0 and t == t.lower() for t in traces)
    assert all(len(s) == 16 and int(s, 16) > 0 for s in spans)
    # and an id we mint is one parse_traceparent honours
    trace, span = new_trace_id(), new_span_id()
    assert parse_traceparent(f"00-{trace}-{span}-01") == (trace, span)


def test_short_ids_keep_their_leading_zeros() -> None:
    assert all(len(random_hex(1)) == 2 for _ in range(2_000))
