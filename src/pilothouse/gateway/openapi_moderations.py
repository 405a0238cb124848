"""OpenAPI operations of the moderation endpoint."""

from __future__ import annotations

from pilothouse.gateway.openapi import Operation, content

_MODERATION_BODY = {
    "type": "object",
    "required": ["input"],
    "properties": {
        "model": {"$ref": "#/components/schemas/ModelAlias"},
        "input": {"type": ["string", "array"], "minLength": 1, "minItems": 1},
    },
}
_MODERATION = {
    "type": "object",
    "required": ["id", "model", "results"],
    "properties": {
        "id": {"type": "string"},
        "model": {"type": "string"},
        "results": {"type": "array", "items": {"type": "object"}},
    },
}

OPERATIONS: list[Operation] = [
    Operation(
        "POST",
        prefix + "/moderations",
        "Moderation, passed to an upstream that has it",
        "openai",
        body=_MODERATION_BODY,
        ok={200: content(_MODERATION)},
        errors=(400, 401, 403, 404, 413, 429, 502, 503, 504),
    )
    for prefix in ("/v1", "")
]
