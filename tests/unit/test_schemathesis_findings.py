"""Inputs schemathesis turned into 500s; each is now a precise 400."""

from __future__ import annotations

import pytest

from pilothouse.errors import InvalidRequestError
from pilothouse.gateway.validate import chat_request
from pilothouse.limits.keys import validate_key_spec
from pilothouse.telemetry.otlp_receive import parse_request


@pytest.mark.parametrize(
    ("spec", "param"),
    [
        ({"name": "k", "scopes": [{}]}, "scopes"),
        ({"name": "k", "rpm": 372303414924}, "rpm"),
        ({"name": "k", "model_limits": {"chat": {"tpm": 2**40}}}, "tpm"),
        ({"name": "k", "budget_usd": 1.5e308}, "budget_usd"),
        ({"name": "k", "budget_usd": "NaN"}, "budget_usd"),
    ],
)
def test_key_specs_out_of_range_are_400(spec: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        validate_key_spec(spec)
    assert info.value.param == param


def test_message_role_of_the_wrong_type_is_400() -> None:
    with pytest.raises(InvalidRequestError) as info:
        chat_request({"model": "chat", "messages": [{"role": {}, "content": "x"}]})
    assert info.value.param == "messages[0].role"


@pytest.mark.parametrize(
    "body", [b"null", b"[]", b'{"resourceSpans": 1}', b'{"resourceSpans": [7]}']
)
def test_otlp_json_of_the_wrong_shape_is_400(body: bytes) -> None:
    with pytest.raises(InvalidRequestError):
        parse_request(body, "application/json")
