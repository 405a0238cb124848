"""OpenAPI operations of ``/admin/teams`` and ``/admin/users`` (see ``gateway/openapi_ops.py``)."""

from __future__ import annotations

from typing import Any

from pilothouse.gateway.openapi import Operation, content, errors, path_param, query

_STR = {"type": "string"}
_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"]}
_RATE = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
_PERIOD = {"enum": ["total", "day", "month"]}


def _record(kind: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "id": _STR,
        "name": _STR,
        "models": {"type": ["array", "null"], "items": _STR},
        "rpm": _NULLABLE_INT,
        "tpm": _NULLABLE_INT,
        "budget_usd": _NULLABLE_STR,
        "budget_period": _PERIOD,
        "metadata": {"type": "object"},
        "created_at": _NULLABLE_STR,
        "updated_at": _NULLABLE_STR,
        "spend_usd": _STR,
        "budget_left_usd": _NULLABLE_STR,
    }
    if kind == "user":
        properties["team_id"] = _NULLABLE_STR
    return {
        "type": "object",
        "required": ["id", "name", "budget_period"],
        "properties": properties,
    }


def _spec(kind: str, *, patch: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S"},
        "models": {"type": ["array", "null"], "items": {"type": "string", "minLength": 1}},
        "rpm": {"anyOf": [_RATE, {"type": "null"}]},
        "tpm": {"anyOf": [_RATE, {"type": "null"}]},
        "budget_usd": {"type": ["number", "null"], "minimum": 0, "maximum": 9_000_000},
        "budget_period": _PERIOD,
        "metadata": {"type": "object"},
    }
    if kind == "user":
        properties["team_id"] = {"type": ["string", "null"], "pattern": "^team_"}
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }
    if patch:
        schema["minProperties"] = 1
    else:
        schema["required"] = ["name"]
    return schema


def _operations(kind: str, base: str, param: str) -> list[Operation]:
    item = f"{base}/{{{param}}}"
    one = content(_record(kind))
    path = [path_param(param, f"{kind} id ({kind}_…)")]
    filters = [query("team_id", "only users of this team")] if kind == "user" else []
    many = content(
        {"type": "object", "required": ["data"], "properties": {"data": {"items": _record(kind)}}}
    )
    return [
        Operation(
            "POST", base, f"Create a {kind} with its own budget, RPM/TPM and models",
            "admin", "admin", body=_spec(kind, patch=False), ok={201: one},
            errors=errors(400, 401, 403, 409, 413),
        ),
        Operation(
            "GET", base, f"List {kind}s with their spend this period", "admin", "admin",
            params=filters, ok={200: many}, errors=(400, 401, 403),
        ),
        Operation(
            "GET", item, f"Show a {kind}", "admin", "admin", params=path, ok={200: one},
            errors=(400, 401, 403, 404),
        ),
        Operation(
            "PATCH", item, f"Change a {kind}'s budget, limits, models or name", "admin", "admin",
            params=path, body=_spec(kind, patch=True), ok={200: one},
            errors=errors(400, 401, 403, 404, 409, 413),
        ),
        Operation(
            "DELETE", item, f"Delete a {kind} no live key refers to", "admin", "admin",
            params=path, ok={200: one}, errors=(400, 401, 403, 404, 409),
        ),
    ]  # fmt: skip


OPERATIONS: list[Operation] = [
    *_operations("team", "/admin/teams", "team_id"),
    *_operations("user", "/admin/users", "user_id"),
]
