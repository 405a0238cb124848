"""OpenAPI operations of the Files and Batch APIs (registered in ``gateway/openapi_ops``)."""

from __future__ import annotations

from typing import Any

from pilothouse.gateway.openapi import Operation, content, path_param, query

_STR = {"type": "string"}
_INT = {"type": "integer"}
_NULL_INT = {"type": ["integer", "null"]}
_NULL_STR = {"type": ["string", "null"]}
_FILE_ID = path_param("file_id", "file-…")
_BATCH_ID = path_param("batch_id", "batch_…")
_STATUSES = [
    "validating", "failed", "in_progress", "finalizing",
    "completed", "expired", "cancelling", "cancelled",
]  # fmt: skip
_FILE: dict[str, Any] = {
    "type": "object",
    "required": ["id", "object", "bytes", "created_at", "filename", "purpose", "status"],
    "properties": {
        "id": _STR,
        "object": {"const": "file"},
        "bytes": _INT,
        "created_at": _INT,
        "filename": _STR,
        "purpose": {"enum": ["batch", "batch_output"]},
        "status": _STR,
        "expires_at": _NULL_INT,
    },
}
_BATCH: dict[str, Any] = {
    "type": "object",
    "required": [
        "id", "object", "endpoint", "input_file_id", "completion_window", "status",
        "created_at", "request_counts",
    ],
    "properties": {
        "id": _STR,
        "object": {"const": "batch"},
        "endpoint": _STR,
        "errors": {
            "type": ["object", "null"],
            "properties": {
                "object": {"const": "list"},
                "data": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["code", "message", "line"],
                        "properties": {
                            "code": _STR, "message": _STR, "param": _NULL_STR, "line": _NULL_INT,
                        },
                    },
                },
            },
        },
        "input_file_id": _STR,
        "completion_window": {"const": "24h"},
        "status": {"enum": _STATUSES},
        "output_file_id": _NULL_STR,
        "error_file_id": _NULL_STR,
        "created_at": _INT,
        **{
            name: _NULL_INT
            for name in (
                "in_progress_at", "expires_at", "finalizing_at", "completed_at",
                "failed_at", "expired_at", "cancelling_at", "cancelled_at",
            )
        },
        "request_counts": {
            "type": "object",
            "required": ["total", "completed", "failed"],
            "properties": {"total": _INT, "completed": _INT, "failed": _INT},
        },
        "metadata": {"type": ["object", "null"], "additionalProperties": _STR},
    },
}  # fmt: skip


def _list(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["object", "data", "has_more"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": item},
            "first_id": _NULL_STR,
            "last_id": _NULL_STR,
            "has_more": {"type": "boolean"},
        },
    }


_READ = (400, 401, 403, 404, 429, 503)
_AFTER = query(
    "after",
    "id of the last item of the previous page",
    {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
)

OPERATIONS: list[Operation] = [
    Operation(
        "POST",
        "/v1/files",
        "Upload a batch input file (multipart: file, purpose=batch)",
        "batches",
        body={
            "type": "object",
            "required": ["file", "purpose"],
            "properties": {
                "file": {"type": "string", "format": "binary"},
                "purpose": {"enum": ["batch"]},
            },
        },
        body_media="multipart/form-data",
        ok={200: content(_FILE)},
        errors=(400, 401, 403, 408, 413, 429, 503),
    ),
    Operation(
        "GET",
        "/v1/files",
        "List the caller's files (an admin sees all)",
        "batches",
        params=[
            query("purpose", "batch or batch_output", {"enum": ["batch", "batch_output"]}),
            query("limit", "page size, 1 to 10000", {"type": "string", "pattern": "^[0-9]{1,5}$"}),
            query("order", "asc or desc by creation (default desc)", {"enum": ["asc", "desc"]}),
            _AFTER,
        ],
        ok={200: content(_list(_FILE))},
        errors=(400, 401, 403, 429, 503),
    ),
    Operation(
        "GET",
        "/v1/files/{file_id}",
        "Retrieve a file object",
        "batches",
        params=[_FILE_ID],
        ok={200: content(_FILE)},
        errors=_READ,
    ),
    Operation(
        "DELETE",
        "/v1/files/{file_id}",
        "Delete a file (a running batch keeps its copied lines)",
        "batches",
        params=[_FILE_ID],
        ok={
            200: content(
                {
                    "type": "object",
                    "required": ["id", "object", "deleted"],
                    "properties": {"object": {"const": "file"}, "deleted": {"const": True}},
                }
            )
        },
        errors=_READ,
    ),
    Operation(
        "GET",
        "/v1/files/{file_id}/content",
        "A file's bytes (batch output and error files are JSONL)",
        "batches",
        params=[_FILE_ID],
        ok={200: content({"type": "string", "format": "binary"}, "application/octet-stream")},
        errors=_READ,
    ),
    Operation(
        "POST",
        "/v1/batches",
        "Create a batch from an uploaded file; the gateway runs every line itself",
        "batches",
        body={
            "type": "object",
            "required": ["input_file_id", "endpoint", "completion_window"],
            "properties": {
                "input_file_id": _STR,
                "endpoint": {
                    "enum": [
                        "/v1/chat/completions",
                        "/v1/embeddings",
                        "/v1/responses",
                        "/v1/completions",
                        "/v1/moderations",
                    ]
                },
                "completion_window": {"const": "24h"},
                "metadata": {"type": ["object", "null"], "additionalProperties": _STR},
            },
        },
        ok={200: content(_BATCH)},
        errors=(400, 401, 403, 404, 408, 413, 429, 503),
    ),
    Operation(
        "GET",
        "/v1/batches",
        "List the caller's batches, newest first (an admin sees all)",
        "batches",
        params=[
            query("limit", "page size, 1 to 100", {"type": "string", "pattern": "^[0-9]{1,3}$"}),
            _AFTER,
        ],
        ok={200: content(_list(_BATCH))},
        errors=(400, 401, 403, 429, 503),
    ),
    Operation(
        "GET",
        "/v1/batches/{batch_id}",
        "Retrieve a batch (request_counts are live while it runs)",
        "batches",
        params=[_BATCH_ID],
        ok={200: content(_BATCH)},
        errors=_READ,
    ),
    Operation(
        "POST",
        "/v1/batches/{batch_id}/cancel",
        "Cancel a batch: in-flight lines finish, the rest are written as batch_cancelled",
        "batches",
        params=[_BATCH_ID],
        ok={200: content(_BATCH)},
        errors=(*_READ, 409),
    ),
]
