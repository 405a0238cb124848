"""OpenAPI operations of the releases admin API: audit log and route versions."""

from __future__ import annotations

from pilothouse.gateway.openapi import Operation, content, path_param, query

_STR = {"type": "string"}
_ADMIN_ERRORS = (400, 401, 403)

OPERATIONS: list[Operation] = [
    Operation(
        "GET",
        "/admin/audit",
        "Audit log rows, oldest first (paged by seq)",
        "releases",
        "admin",
        params=[
            query("since", "ISO time or a span like 7d"),
            query("actor", "filter by principal"),
            query("action", "filter by action"),
            query("cursor", "seq to continue after", {"type": "string", "pattern": "^[0-9]{1,9}$"}),
            query("limit", "page size (max 500)", {"type": "string", "pattern": "^[0-9]{1,3}$"}),
        ],
        ok={
            200: content(
                {
                    "type": "object",
                    "required": ["data", "next_cursor"],
                    "properties": {
                        "data": {"type": "array", "items": {"type": "object"}},
                        "next_cursor": {"type": ["string", "null"]},
                    },
                }
            )
        },
        errors=_ADMIN_ERRORS,
    ),
    Operation(
        "GET",
        "/admin/audit/head",
        "Last seq and head hash of the audit chain",
        "releases",
        "admin",
        ok={
            200: content(
                {
                    "type": "object",
                    "required": ["seq", "head"],
                    "properties": {"seq": {"type": "integer"}, "head": _STR},
                }
            )
        },
        errors=_ADMIN_ERRORS,
    ),
    Operation(
        "GET",
        "/admin/routes",
        "Route versions and the one in force",
        "releases",
        "admin",
        ok={200: content({"type": "object", "required": ["current", "data"]})},
        errors=_ADMIN_ERRORS,
    ),
    Operation(
        "GET",
        "/admin/routes/{ref}",
        "One route version",
        "releases",
        "admin",
        params=[path_param("ref", "version hash (or a prefix)")],
        ok={200: content({"type": "object"})},
        errors=(*_ADMIN_ERRORS, 404),
    ),
]
