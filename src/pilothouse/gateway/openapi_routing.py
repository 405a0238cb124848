"""OpenAPI operations of the routing admin API (registered in openapi_ops.SOURCES)."""

from __future__ import annotations

from pilothouse.gateway.openapi import Operation, content

_STR = {"type": "string"}
_SET = {
    "type": "object",
    "required": ["alias", "on"],
    "properties": {
        "alias": {"type": "string", "minLength": 1},
        "on": {"type": "boolean"},
        "reason": _STR,
    },
    "additionalProperties": False,
}
_STATE = {
    "type": "object",
    "required": ["alias", "on", "degrade_to"],
    "properties": {"alias": _STR, "on": {"type": "boolean"}, "degrade_to": _STR},
}
_LIST = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["alias"],
                "properties": {"alias": _STR, "by": _STR, "at": _STR},
            },
        }
    },
}

OPERATIONS: list[Operation] = [
    Operation(
        "POST",
        "/admin/degrade",
        "Force (or lift) degraded mode for an alias on every replica: its degrade alias serves, "
        "tools stripped, stricter timeout (operator role, audited)",
        "routing",
        "admin",
        body=_SET,
        ok={200: content(_STATE)},
        errors=(400, 401, 403, 404, 413),
    ),
    Operation(
        "GET",
        "/admin/degrade",
        "Aliases in forced degraded mode, who forced them and when",
        "routing",
        "admin",
        ok={200: content(_LIST)},
        errors=(401, 403),
    ),
]
