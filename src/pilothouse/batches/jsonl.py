"""The batch input file: one request per line, checked before any line runs.

What OpenAI refuses while validating a batch (a line that is not JSON, a
missing or repeated ``custom_id``, a method other than POST, a ``url`` other
than the batch's endpoint) fails the whole batch with every offending line
listed; what depends on the key or the model (a model the key may not use, a
bad body) is a per-line error in the error file, exactly as a live request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from pilothouse.errors import PilothouseError
from pilothouse.inputs import JsonLimits, decode_object

# Batch endpoint → the pipeline endpoint name its lines run as (usage_records.endpoint).
ENDPOINTS: dict[str, str] = {
    "/v1/chat/completions": "chat",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "responses",
    "/v1/completions": "completions",
    "/v1/moderations": "moderations",
}
MAX_CUSTOM_ID = 512
MAX_LISTED_ERRORS = 100


@dataclass(frozen=True, slots=True)
class Line:
    number: int  # 1-based, as an editor shows it
    custom_id: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    code: str
    message: str
    param: str | None = None

    def public(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


def _check(doc: dict[str, Any], number: int, endpoint: str) -> LineError | Line:
    custom_id = doc.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return LineError(number, "missing_custom_id", "`custom_id` must be a non-empty string",
                         "custom_id")  # fmt: skip
    if len(custom_id) > MAX_CUSTOM_ID or "\x00" in custom_id:
        return LineError(
            number, "invalid_custom_id",
            f"`custom_id` must be at most {MAX_CUSTOM_ID} characters without NUL", "custom_id",
        )  # fmt: skip
    method = doc.get("method")
    if method != "POST":
        return LineError(number, "invalid_method",
                         f"`method` must be POST, got {method!r}", "method")  # fmt: skip
    url = doc.get("url")
    if url != endpoint:
        return LineError(
            number, "mismatched_endpoint",
            f"`url` is {url!r} but this batch's endpoint is {endpoint!r}; "
            "every line of a batch must use the batch's endpoint", "url",
        )  # fmt: skip
    body = doc.get("body")
    if not isinstance(body, dict):
        return LineError(number, "invalid_body", "`body` must be a JSON object", "body")
    return Line(number, custom_id, body)


def parse_input(
    content: bytes, endpoint: str, *, max_lines: int, limits: JsonLimits
) -> tuple[list[Line], list[LineError]]:
    """The file's lines, or the reasons the whole batch fails (at most 100 listed)."""
    lines: list[Line] = []
    errors: list[LineError] = []
    seen: dict[str, int] = {}
    raw_lines = content.split(b"\n")
    if raw_lines and raw_lines[-1].strip() == b"":
        raw_lines.pop()
    for number, raw in enumerate(raw_lines, start=1):
        if len(errors) >= MAX_LISTED_ERRORS:
            break
        if not raw.strip():
            errors.append(LineError(number, "invalid_json_line", "empty line; expected a request"))
            continue
        try:
            doc = decode_object(raw, limits, f"line {number}")
        except PilothouseError as exc:
            errors.append(LineError(number, "invalid_json_line", exc.message))
            continue
        checked = _check(doc, number, endpoint)
        if isinstance(checked, LineError):
            errors.append(checked)
            continue
        first = seen.setdefault(checked.custom_id, number)
        if first != number:
            errors.append(
                LineError(
                    number,
                    "duplicate_custom_id",
                    f"custom_id {checked.custom_id!r} is already used on line {first}; "
                    "each line needs its own",
                    "custom_id",
                )
            )
            continue
        lines.append(checked)
    if not errors and not lines:
        errors.append(LineError(1, "empty_file", "the input file has no requests"))
    if len(raw_lines) > max_lines:
        errors.append(
            LineError(
                max_lines + 1,
                "too_many_requests",
                f"the input file has {len(raw_lines)} lines; a batch may have at most "
                f"{max_lines} (batches.max_lines)",
            )
        )
    return lines, errors


def dumps_lines(rows: list[dict[str, Any]]) -> bytes:
    """JSONL bytes: one compact object per line, newline-terminated."""
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)
