"""OpenAPI operations of the releases admin API: audit, route versions, prompts, lineage."""

from __future__ import annotations

from pilothouse.gateway.openapi import Operation, content, path_param, query

_STR = {"type": "string"}
_ADMIN_ERRORS = (400, 401, 403)
_BOOL = {"type": "boolean"}
_OBJ = {"type": "object"}
_NAME = path_param("name", "prompt name")
_REF = path_param("ref", "version number or label")
_LABEL = path_param("label", "label name, e.g. prod")
_BUNDLE = {
    "type": "object",
    "required": ["name", "model", "messages"],
    "properties": {
        "name": _STR,
        "model": _STR,
        "messages": {"type": "array", "items": _OBJ},
        "variables": _OBJ,
        "params": _OBJ,
        "reason": _STR,
    },
}
_PUSHED = {
    "type": "object",
    "required": ["name", "version", "hash", "created"],
    "properties": {
        "name": _STR,
        "version": {"type": "integer"},
        "hash": _STR,
        "created": _BOOL,
    },
}

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
    Operation(
        "GET",
        "/admin/lineage/{request_id}",
        "Lineage of one request: key, alias, route version, prompt version, promotion",
        "releases",
        "admin",
        params=[path_param("request_id", "the x-request-id of the request")],
        ok={200: content({"type": "object", "required": ["request_id", "prompt"]})},
        errors=(*_ADMIN_ERRORS, 404),
    ),
    Operation(
        "POST",
        "/admin/prompts",
        "Push a prompt bundle (201 new version, 200 identical content)",
        "releases",
        "admin",
        body=_BUNDLE,
        ok={200: content(_PUSHED), 201: content(_PUSHED)},
        errors=_ADMIN_ERRORS,
    ),
    Operation(
        "GET",
        "/admin/prompts",
        "Prompts with their latest version and labels",
        "releases",
        "admin",
        ok={200: content({"type": "object", "required": ["data"]})},
        errors=_ADMIN_ERRORS,
    ),
    Operation(
        "GET",
        "/admin/prompts/{name}",
        "A prompt's versions and labels",
        "releases",
        "admin",
        params=[_NAME],
        ok={200: content({"type": "object", "required": ["name", "versions", "labels"]})},
        errors=(*_ADMIN_ERRORS, 404),
    ),
    Operation(
        "GET",
        "/admin/prompts/{name}/versions/{ref}",
        "The full bundle of a version (by number or label)",
        "releases",
        "admin",
        params=[_NAME, _REF],
        ok={200: content({"type": "object", "required": ["version", "hash"]})},
        errors=(*_ADMIN_ERRORS, 404),
    ),
    Operation(
        "GET",
        "/admin/prompts/{name}/versions/{ref}/card",
        "The prompt card of a version, with its eval evidence",
        "releases",
        "admin",
        params=[_NAME, _REF],
        ok={200: content({"type": "object"})},
        errors=(*_ADMIN_ERRORS, 404),
    ),
    Operation(
        "POST",
        "/admin/prompts/{name}/versions/{version}/approve",
        "Approve a version for a label (not by its author)",
        "releases",
        "admin",
        params=[_NAME, path_param("version", "version number")],
        body={"type": "object", "required": ["label"], "properties": {"label": _STR}},
        ok={201: content({"type": "object"})},
        errors=(*_ADMIN_ERRORS, 404),
    ),
    Operation(
        "PUT",
        "/admin/prompts/{name}/labels/{label}",
        "Move a label (409 gate_not_met when a protected label's policy fails)",
        "releases",
        "admin",
        params=[_NAME, _LABEL],
        body={
            "type": "object",
            "required": ["version"],
            "properties": {"version": {"type": "integer"}, "reason": _STR, "force": _BOOL},
        },
        ok={200: content({"type": "object", "required": ["label", "version", "previous"]})},
        errors=(*_ADMIN_ERRORS, 404, 409),
    ),
    Operation(
        "DELETE",
        "/admin/prompts/{name}/labels/{label}",
        "Remove a label (requests for it are a 404 at once)",
        "releases",
        "admin",
        params=[_NAME, _LABEL],
        body_required=False,
        ok={200: content({"type": "object"})},
        errors=(*_ADMIN_ERRORS, 404),
    ),
    Operation(
        "GET",
        "/admin/prompts/{name}/labels/{label}/history",
        "Every move of a label: from, to, who, when, why, forced, evidence",
        "releases",
        "admin",
        params=[_NAME, _LABEL],
        ok={200: content({"type": "object", "required": ["data"]})},
        errors=_ADMIN_ERRORS,
    ),
    Operation(
        "POST",
        "/admin/prompts/{name}/render",
        "Render a version's messages with variables (400 naming a bad variable)",
        "releases",
        "admin",
        params=[_NAME],
        body={
            "type": "object",
            "required": ["ref"],
            "properties": {"ref": {"type": ["string", "integer"]}, "variables": _OBJ},
        },
        ok={200: content({"type": "object", "required": ["messages", "params"]})},
        errors=(*_ADMIN_ERRORS, 404),
    ),
]
