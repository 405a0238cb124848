"""The batch input file parser and the multipart upload parser."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilothouse.batches.jsonl import parse_input
from pilothouse.batches.multipart import parse_form
from pilothouse.errors import InvalidRequestError
from pilothouse.inputs import JsonLimits

LIMITS = JsonLimits(max_bytes=4096, max_depth=8)
CHAT = "/v1/chat/completions"


def line(custom_id: object = "a", **over: object) -> bytes:
    doc = {"custom_id": custom_id, "method": "POST", "url": CHAT, "body": {"model": "m"}}
    return json.dumps({**doc, **over}).encode() + b"\n"


def parse(content: bytes, max_lines: int = 100) -> tuple[list, list]:  # type: ignore[type-arg]
    return parse_input(content, CHAT, max_lines=max_lines, limits=LIMITS)


def test_valid_lines_keep_their_numbers_and_a_missing_final_newline_is_fine() -> None:
    lines, errors = parse(line("a") + line("b").rstrip())
    assert errors == []
    assert [(ln.number, ln.custom_id) for ln in lines] == [(1, "a"), (2, "b")]


def test_every_structural_problem_is_listed_with_its_line() -> None:
    content = (
        line("a") + b"[1]\n" + line("a") + line("b", method="GET") + line("c", url="/v1/x")
        + line("d", body="text") + line(7) + b"\n" + line("e" * 600)
        + b'{"custom_id": ' + b"[" * 20 + b"\n"
    )  # fmt: skip
    _lines, errors = parse(content)
    assert [(e.line, e.code) for e in errors] == [
        (2, "invalid_json_line"),
        (3, "duplicate_custom_id"),
        (4, "invalid_method"),
        (5, "mismatched_endpoint"),
        (6, "invalid_body"),
        (7, "missing_custom_id"),
        (8, "invalid_json_line"),
        (9, "invalid_custom_id"),
        (10, "invalid_json_line"),
    ]
    assert "line 1" in errors[1].message  # the duplicate names the first use


def test_too_deep_json_too_many_lines_and_an_empty_file() -> None:
    deep = json.dumps({"custom_id": "x", "method": "POST", "url": CHAT,
                       "body": {"a": [[[[[[[[1]]]]]]]]}}).encode()  # fmt: skip
    assert parse(deep)[1][0].code == "invalid_json_line"
    _lines, errors = parse(line("a") + line("b") + line("c"), max_lines=2)
    assert [(e.line, e.code) for e in errors] == [(3, "too_many_requests")]
    assert [e.code for e in parse(b"")[1]] == ["empty_file"]


def form(content: bytes, filename: str = "in.jsonl") -> tuple[str, bytes]:
    request = httpx.Request(
        "POST", "http://x/v1/files", data={"purpose": "batch"},
        files={"file": (filename, content, "application/jsonl")},
    )  # fmt: skip
    return request.headers["content-type"], request.read()


@given(st.binary(max_size=2000), st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s))
def test_multipart_round_trip_with_any_content(content: bytes, filename: str) -> None:
    content_type, body = form(content + b"\r\n--not-the-boundary\r\n", filename)
    parts = parse_form(content_type, body)
    assert parts["file"].content == content + b"\r\n--not-the-boundary\r\n"
    assert parts["purpose"].content == b"batch"


def test_malformed_multipart_is_a_400() -> None:
    content_type, body = form(b"{}\n")
    for bad_type, bad_body in [
        ("application/json", body),
        ("multipart/form-data", body),  # no boundary
        (content_type, body[: len(body) // 2]),  # truncated
        (content_type, b"garbage"),
    ]:
        with pytest.raises(InvalidRequestError):
            parse_form(bad_type, bad_body)
