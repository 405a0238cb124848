"""OpenAPI operations of the legacy text completions endpoint."""

from __future__ import annotations

from pilothouse.gateway.openapi import Operation, content

_STR = {"type": "string"}
_INT = {"type": "integer"}
_LIMIT = {"type": "integer", "minimum": 1}
_COMPLETIONS_BODY = {
    "type": "object",
    "required": ["model", "prompt"],
    "properties": {
        "model": {"$ref": "#/components/schemas/ModelAlias"},
        "prompt": {"oneOf": [_STR, {"type": "array", "items": _STR, "minItems": 1, "maxItems": 1}]},
        "max_tokens": _LIMIT,
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "n": {"type": "integer", "minimum": 1, "maximum": 128},
        "stream": {"type": "boolean"},
        "stop": {"type": ["string", "array"]},
        "suffix": {"type": ["string", "null"]},
        "echo": {"type": "boolean"},
        "logprobs": {"type": ["integer", "null"]},
        "seed": _INT,
    },
}
_TEXT_COMPLETION = {
    "type": "object",
    "required": ["id", "object", "choices"],
    "properties": {
        "id": _STR,
        "object": {"const": "text_completion"},
        "created": _INT,
        "model": _STR,
        "choices": {"type": "array", "items": {"type": "object"}},
        "usage": {"$ref": "#/components/schemas/Usage"},
    },
}
_SSE = content({"type": "object"}, "text/event-stream")

OPERATIONS: list[Operation] = [
    Operation(
        "POST",
        prefix + "/completions",
        "Legacy text completion (native endpoints; chat translation when the alias opts in)",
        "openai",
        body=_COMPLETIONS_BODY,
        ok={200: {**content(_TEXT_COMPLETION), **_SSE}},
        errors=(400, 401, 403, 404, 413, 429, 502, 503, 504),
    )
    for prefix in ("/v1", "")
]
