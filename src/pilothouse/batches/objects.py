"""Rows → the JSON objects OpenAI's API returns (file, batch), field for field."""

from __future__ import annotations

from datetime import datetime
from typing import Any

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
_TIMES = (
    "in_progress_at", "expires_at", "finalizing_at", "completed_at",
    "failed_at", "expired_at", "cancelling_at", "cancelled_at",
)  # fmt: skip


def unix(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def file_object(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "file",
        "bytes": int(row.bytes),
        "created_at": unix(row.created_at),
        "filename": row.filename,
        "purpose": row.purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": None,
    }


def batch_object(row: Any, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """A batch; ``counts`` (live, from its lines) replaces the stored ones while it runs."""
    completed, failed = int(row.completed), int(row.failed)
    if counts is not None and row.status not in TERMINAL:
        completed, failed = counts.get("done", 0), counts.get("failed", 0)
    body: dict[str, Any] = {
        "id": row.id,
        "object": "batch",
        "endpoint": row.endpoint,
        "errors": row.errors,
        "input_file_id": row.input_file_id,
        "completion_window": row.completion_window,
        "status": row.status,
        "output_file_id": row.output_file_id,
        "error_file_id": row.error_file_id,
        "created_at": unix(row.created_at),
    }
    for name in _TIMES:
        body[name] = unix(getattr(row, name))
    body["request_counts"] = {"total": int(row.total), "completed": completed, "failed": failed}
    body["metadata"] = row.metadata
    return body


def page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
