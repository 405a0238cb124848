"""Client input checks shared by every route: JSON depth and size, types and ranges.

Everything a client sends ends up serialised again (orjson refuses nesting past
254 levels), stored in an integer or JSON column, or compared against a set.
Checking depth, size, type and range here, once, turns what would fail later
(in a background writer, in the database driver, in a ``set()`` of an
unhashable value) into a precise 400 that names the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from pilothouse.errors import InvalidRequestError, PayloadTooLargeError

DEFAULT_MAX_JSON_DEPTH = 64
# orjson cannot serialise deeper than 254 levels; stored rows wrap client JSON a few
# levels deeper still, so a configured depth must stay well below that.
HARD_MAX_JSON_DEPTH = 200
DEFAULT_MAX_METADATA_BYTES = 8 * 1024
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
_DIGITS = re.compile(r"^[0-9]{1,30}$")


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """The limits one gateway applies (from ``server.max_json_depth`` and friends)."""

    max_bytes: int = 4 * 1024 * 1024
    max_depth: int = DEFAULT_MAX_JSON_DEPTH
    max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES

    @classmethod
    def of(cls, server: Any) -> JsonLimits:
        return cls(
            max_bytes=server.max_body_bytes,
            max_depth=server.max_json_depth,
            max_metadata_bytes=server.max_metadata_bytes,
        )


def _got(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def too_deep(param: str, max_depth: int) -> InvalidRequestError:
    return InvalidRequestError(
        f"`{param}` nests JSON deeper than the limit of {max_depth} levels",
        param=param,
        code="json_too_deep",
    )


def check_depth(value: Any, max_depth: int, param: str, shown: int | None = None) -> None:
    """Refuse ``value`` when its arrays/objects nest more than ``max_depth`` levels.

    Iterative (no recursion limit to hit) and it only visits containers. ``shown``
    is the limit named in the error (the document's, when checking one field).
    """
    if not isinstance(value, dict | list):
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise too_deep(param, max_depth if shown is None else shown)
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))


def check_document_depth(doc: Any, max_depth: int, what: str = "request body") -> None:
    """Depth-check a whole document, naming the top-level field that is too deep."""
    if isinstance(doc, dict):
        for key, child in doc.items():
            check_depth(child, max_depth - 1, str(key)[:64], max_depth)
    elif isinstance(doc, list):
        check_depth(doc, max_depth, what)


def decode(raw: bytes, limits: JsonLimits, what: str = "request body") -> Any:
    """Parse client JSON within the size (413) and depth (400) limits."""
    if len(raw) > limits.max_bytes:
        raise PayloadTooLargeError(f"{what} is {len(raw)} bytes; the limit is {limits.max_bytes}")
    if not raw.strip():
        raise InvalidRequestError(f"{what} is empty; expected a JSON object")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"{what} is not valid JSON: {exc}") from None
    # Fast path: fewer brackets than the limit cannot nest past it.
    if raw.count(b"[") + raw.count(b"{") > limits.max_depth:
        check_document_depth(doc, limits.max_depth, what)
    return doc


def decode_object(raw: bytes, limits: JsonLimits, what: str = "request body") -> dict[str, Any]:
    doc = decode(raw, limits, what)
    if not isinstance(doc, dict):
        raise InvalidRequestError(f"{what} must be a JSON object, got {_got(doc)}")
    return doc


def check_metadata(value: Any, limits: JsonLimits, param: str = "metadata") -> dict[str, Any]:
    """A metadata object: an object, within depth and size, storable on every database."""
    if not isinstance(value, dict):
        raise InvalidRequestError(f"`{param}` must be an object, got {_got(value)}", param=param)
    check_depth(value, limits.max_depth, param)
    encoded = orjson.dumps(value)
    if len(encoded) > limits.max_metadata_bytes:
        raise InvalidRequestError(
            f"`{param}` is {len(encoded)} bytes as JSON; the limit is {limits.max_metadata_bytes}",
            param=param,
            code="metadata_too_large",
        )
    if b"\\u0000" in encoded:  # PostgreSQL text columns cannot hold NUL
        raise InvalidRequestError(f"`{param}` must not contain NUL characters", param=param)
    return value


def metadata_header(raw: str | None, limits: JsonLimits) -> dict[str, Any] | None:
    """The ``x-pilothouse-metadata`` header: a JSON object within the metadata limits."""
    param = "x-pilothouse-metadata"
    if not raw:
        return None
    size = len(raw.encode("utf-8", "surrogateescape"))
    if size > limits.max_metadata_bytes:
        raise InvalidRequestError(
            f"`{param}` header is {size} bytes; the limit is {limits.max_metadata_bytes}",
            param=param,
            code="metadata_too_large",
        )
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequestError(f"`{param}` header must be a JSON object", param=param) from None
    if not isinstance(value, dict):
        raise InvalidRequestError(f"`{param}` header must be a JSON object", param=param)
    return check_metadata(value, limits, param)


def int_in(value: Any, param: str, low: int, high: int) -> int:
    """A JSON integer (not a bool, not a float) within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(f"`{param}` must be an integer, got {_got(value)}", param=param)
    if not low <= value <= high:
        raise InvalidRequestError(f"`{param}` must be between {low} and {high}", param=param)
    return value


def query_int(raw: str, param: str, low: int, high: int) -> int:
    """An integer query parameter: ASCII digits only, within ``[low, high]``."""
    if not _DIGITS.match(raw):
        raise InvalidRequestError(f"`{param}` must be a non-negative integer", param=param)
    value = int(raw)
    if not low <= value <= high:
        raise InvalidRequestError(f"`{param}` must be between {low} and {high}", param=param)
    return value


def decimal_in(value: Any, param: str, low: Decimal, high: Decimal) -> Decimal:
    """A finite decimal number (JSON number or numeric string) within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidRequestError(f"`{param}` must be a number, got {_got(value)}", param=param)
    try:
        number = Decimal(str(value).strip()) if len(str(value)) <= 64 else Decimal("NaN")
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        raise InvalidRequestError(f"`{param}` must be a finite number", param=param)
    if not low <= number <= high:
        raise InvalidRequestError(f"`{param}` must be between {low} and {high}", param=param)
    return number


def one_of(value: Any, param: str, choices: Collection[str]) -> str:
    """A string from ``choices`` (safe for unhashable values such as lists)."""
    if not isinstance(value, str) or value not in choices:
        shown = ", ".join(sorted(choices))
        raise InvalidRequestError(
            f"`{param}` must be one of {shown}, got {value!r:.80}", param=param
        )
    return value


def strings(value: Any, param: str, choices: Collection[str] | None = None) -> list[str]:
    """An array of non-empty strings, each from ``choices`` when given."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidRequestError(f"`{param}` must be an array of strings", param=param)
    if choices is not None:
        unknown = sorted(set(value) - set(choices))
        if unknown:
            raise InvalidRequestError(
                f"`{param}` must be drawn from {', '.join(sorted(choices))}; "
                f"unknown: {', '.join(unknown)[:200]}",
                param=param,
            )
    return value
