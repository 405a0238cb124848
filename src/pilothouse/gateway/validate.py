"""Request body checks: precise 400s for wrong types, before any upstream is called.

Only fields the gateway relies on are typed here; other OpenAI parameters pass
through untouched so new upstream features work without a gateway release.
"""

from __future__ import annotations

from typing import Any

from pilothouse.errors import InvalidRequestError
from pilothouse.inputs import JsonLimits, decode_object

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def parse_json(raw: bytes, limit: int | JsonLimits) -> dict[str, Any]:
    """A JSON object body within the size and depth limits (see :mod:`pilothouse.inputs`)."""
    limits = limit if isinstance(limit, JsonLimits) else JsonLimits(max_bytes=limit)
    return decode_object(raw, limits)


def _bad(param: str, expected: str, value: Any) -> InvalidRequestError:
    got = "null" if value is None else type(value).__name__
    return InvalidRequestError(f"`{param}` must be {expected}, got {got}", param=param)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "a non-empty string", model)
    return model


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "a non-empty array", messages)
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _bad(where, "an object", msg)
        role = msg.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise InvalidRequestError(
                f"`{where}.role` must be one of {sorted(ROLES)}, got {role!r}",
                param=f"{where}.role",
            )
        content = msg.get("content")
        if content is not None and not isinstance(content, str | list):
            raise _bad(f"{where}.content", "a string or an array of content parts", content)
        if content is None and role in ("user", "system", "developer"):
            raise _bad(f"{where}.content", "a string or an array of content parts", content)


MAX_CHOICES = 128  # OpenAI's own ceiling for `n`


def _check_numbers(body: dict[str, Any]) -> None:
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (not _is_int(value) or value < 1):
            raise _bad(name, "a positive integer", value)
    for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        value = body.get(name)
        if value is None:
            continue
        if not _is_number(value) or not low <= value <= high:
            raise InvalidRequestError(
                f"`{name}` must be a number between {low} and {high}", param=name
            )
    n: Any = body.get("n")
    if n is not None and (not _is_int(n) or not 1 <= n <= MAX_CHOICES):
        raise InvalidRequestError(f"`n` must be an integer between 1 and {MAX_CHOICES}", param="n")


def _check_options(body: dict[str, Any]) -> None:
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("stream", "a boolean", stream)
    opts = body.get("stream_options")
    if opts is not None and not isinstance(opts, dict):
        raise _bad("stream_options", "an object", opts)
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise _bad("stop", "a string or an array of strings", stop)
    tools = body.get("tools")
    if tools is not None and (
        not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)
    ):
        raise _bad("tools", "an array of tool objects", tools)
    fmt = body.get("response_format")
    formats = ("text", "json_object", "json_schema")
    if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") not in formats):
        raise InvalidRequestError(
            "`response_format.type` must be one of text, json_object, json_schema",
            param="response_format",
        )
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _bad("metadata", "an object", metadata)


def chat_request(body: dict[str, Any]) -> str:
    """Validate a chat completions body; returns the requested alias."""
    model = _model(body)
    _check_messages(body.get("messages"))
    _check_numbers(body)
    _check_options(body)
    return model


def embeddings_request(body: dict[str, Any]) -> str:
    model = _model(body)
    value = body.get("input")
    ok = isinstance(value, str) and value != ""
    if isinstance(value, list) and value:
        ok = (
            all(isinstance(v, str) for v in value)
            or all(_is_int(v) for v in value)
            or all(isinstance(v, list) and all(_is_int(x) for x in v) for v in value)
        )
    if not ok:
        raise InvalidRequestError(
            "`input` must be a non-empty string, array of strings, or array of token arrays",
            param="input",
        )
    return model


def moderation_request(body: dict[str, Any]) -> str:
    """``input`` is a string, strings, or text/image items; returns the alias (``model``)."""
    value = body.get("input")
    ok = isinstance(value, str) and value != ""
    if isinstance(value, list) and value:
        ok = all(isinstance(v, str) for v in value) or all(
            isinstance(v, dict) and v.get("type") in ("text", "image_url") for v in value
        )
    if not ok:
        raise InvalidRequestError(
            "`input` must be a non-empty string, array of strings, or array of "
            "text/image_url items",
            param="input",
        )
    return _model(body)
