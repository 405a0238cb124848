"""OpenAPI operations of ``/admin/keys`` (see ``gateway/openapi_ops.py``)."""

from __future__ import annotations

from pilothouse.gateway.openapi import Operation, content, errors, path_param, query

_RATE = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
_KEY = {"$ref": "#/components/schemas/Key"}
_NEW_KEY = content({"allOf": [_KEY], "required": ["key"]})
_KEY_PATCH_FIELDS = (
    "name", "models", "rpm", "tpm", "model_limits", "budget_usd", "budget_period", "metadata",
    "expires_at", "max_concurrency", "team_id", "user_id",
)  # fmt: skip
_KEY_SPEC = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S"},
        "models": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "rpm": _RATE,
        "tpm": _RATE,
        "model_limits": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"rpm": _RATE, "tpm": _RATE},
            },
        },
        "budget_usd": {"type": "number", "minimum": 0, "maximum": 9_000_000},
        "budget_period": {"enum": ["total", "day", "month"]},
        "metadata": {"type": "object"},
        "scopes": {
            "type": "array",
            "minItems": 1,
            "items": {"enum": ["inference", "admin", "metrics"]},
        },
        "max_concurrency": _RATE,
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
        "role": {"enum": ["admin", "operator", "viewer", "finance"]},
        "team_id": {"type": ["string", "null"], "pattern": "^team_"},
        "user_id": {"type": ["string", "null"], "pattern": "^user_"},
    },
}
_KEY_PATCH = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {
        name: {"anyOf": [_KEY_SPEC["properties"][name], {"type": "null"}]}  # type: ignore[index]
        for name in _KEY_PATCH_FIELDS
    },
}
OPERATIONS: list[Operation] = [
    Operation(
        "POST",
        "/admin/keys",
        "Create a virtual key (the secret is shown once)",
        "admin",
        "admin",
        body=_KEY_SPEC,
        ok={201: _NEW_KEY},
        errors=errors(400, 401, 403, 413),
    ),
    Operation(
        "GET",
        "/admin/keys",
        "List keys",
        "admin",
        "admin",
        params=[query("include_revoked", "1 to include revoked keys", {"enum": ["0", "1"]})],
        ok={200: content({"type": "object", "properties": {"data": {"items": _KEY}}})},
        errors=(400, 401, 403),
    ),
    Operation(
        "DELETE",
        "/admin/keys/{key_id}",
        "Revoke a key",
        "admin",
        "admin",
        params=[path_param("key_id", "key id (key_…)")],
        ok={200: content(_KEY)},
        errors=(400, 401, 403, 404),
    ),
    Operation(
        "PATCH",
        "/admin/keys/{key_id}",
        "Change a key's models, limits, budget, metadata or expiry (the secret stays)",
        "admin",
        "admin",
        params=[path_param("key_id", "key id (key_…)")],
        body=_KEY_PATCH,
        ok={200: content(_KEY)},
        errors=errors(400, 401, 403, 404, 413),
    ),
    Operation(
        "POST",
        "/admin/keys/{key_id}/rotate",
        "Issue a new secret; the old one works for grace_s seconds",
        "admin",
        "admin",
        params=[path_param("key_id", "key id (key_…)")],
        body={
            "type": "object",
            "additionalProperties": False,
            "properties": {"grace_s": {"type": "number", "minimum": 0, "maximum": 2592000}},
        },
        body_required=False,
        ok={201: _NEW_KEY},
        errors=errors(400, 401, 403, 404, 413),
    ),
]
