"""The shared client-input checks: depth, size, ranges, hash-safe membership."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pilothouse.errors import InvalidRequestError, PayloadTooLargeError
from pilothouse.inputs import (
    JsonLimits,
    check_metadata,
    decimal_in,
    decode_object,
    metadata_header,
    one_of,
    query_int,
)

LIMITS = JsonLimits(max_bytes=10_000, max_depth=8, max_metadata_bytes=100)


def test_depth_limit_names_the_top_level_field() -> None:
    raw = b'{"model": "m", "tools": ' + b"[" * 8 + b"]" * 8 + b"}"
    with pytest.raises(InvalidRequestError) as info:
        decode_object(raw, LIMITS)
    assert info.value.param == "tools" and "8 levels" in info.value.message
    assert decode_object(b'{"tools": ' + b"[" * 7 + b"]" * 7 + b"}", LIMITS)["tools"]


def test_deep_documents_beyond_the_recursion_limit_are_refused() -> None:
    with pytest.raises(InvalidRequestError):
        decode_object(b"[" * 5000 + b"]" * 5000, LIMITS)


def test_size_and_type() -> None:
    with pytest.raises(PayloadTooLargeError):
        decode_object(b"{}" + b" " * 10_000, LIMITS)
    for raw in (b"true", b"1", b"null", b"[]"):
        with pytest.raises(InvalidRequestError, match="JSON object"):
            decode_object(raw, LIMITS)


def test_metadata_size_depth_and_nul() -> None:
    assert check_metadata({"user": "u"}, LIMITS) == {"user": "u"}
    for bad in ({"a": "x" * 200}, {"a": [[[[[[[[1]]]]]]]]}, {"a": "b\x00"}, ["list"]):
        with pytest.raises(InvalidRequestError) as info:
            check_metadata(bad, LIMITS)
        assert info.value.param == "metadata"
    with pytest.raises(InvalidRequestError) as info:
        metadata_header('{"user": "' + "u" * 200 + '"}', LIMITS)
    assert info.value.code == "metadata_too_large"
    assert metadata_header(None, LIMITS) is None


@pytest.mark.parametrize("raw", ["99999999999999999999", "²", "-1", "1e3", ""])
def test_query_int_is_bounded_ascii(raw: str) -> None:
    with pytest.raises(InvalidRequestError):
        query_int(raw, "status", 100, 599)


def test_decimal_and_choices() -> None:
    assert decimal_in("1.5", "b", Decimal(0), Decimal(10)) == Decimal("1.5")
    for bad in ("NaN", "1e20", 1e300, "Infinity", True, [1]):
        with pytest.raises(InvalidRequestError):
            decimal_in(bad, "b", Decimal(0), Decimal(10))
    with pytest.raises(InvalidRequestError):
        one_of(["user"], "role", {"user"})
