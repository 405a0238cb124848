"""Outcome feedback: applications say whether a request or task succeeded.

Feedback is stored against a *task key*: the task id when the application
names one, otherwise the request id. When feedback names a request, its task
key is taken from that request's own ``task_id`` metadata, so reports can join
feedback to spend on one column no matter how the feedback was addressed.

A key may only rate its own requests (checked against the usage ledger, and
answered 404 rather than 403 so one tenant cannot probe another's request
ids). Task ids are not checked: a task's requests may come from several
services with different keys, and an unknown task id harms nothing.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from ulid import ULID

from pilothouse.errors import InvalidRequestError, NotFoundError
from pilothouse.inputs import JsonLimits, check_metadata
from pilothouse.limits.keys import KeyRecord
from pilothouse.store.tables import feedback as fb
from pilothouse.store.tables import usage_records as u

FIELDS = ("request_id", "task_id", "success", "score", "comment", "metadata")
MAX_REQUEST_ID = 64
MAX_TASK_ID = 200
MAX_COMMENT = 2000


@dataclass(frozen=True, slots=True)
class FeedbackInput:
    """A validated ``POST /v1/feedback`` body."""

    request_id: str | None
    task_id: str | None
    success: bool | None
    score: float | None
    comment: str | None
    metadata: dict[str, Any] | None


def _bad(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _got(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _text(body: dict[str, Any], name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _bad(name, f"`{name}` must be a non-empty string, got {_got(value)}")
    if len(value) > limit:
        raise _bad(name, f"`{name}` is {len(value)} characters; the limit is {limit}")
    if "\x00" in value:  # PostgreSQL text cannot hold NUL: refuse it here, not with a 500
        raise _bad(name, f"`{name}` must not contain NUL characters")
    return value


def _success(body: dict[str, Any]) -> bool | None:
    value = body.get("success")
    if value is not None and not isinstance(value, bool):
        raise _bad("success", f"`success` must be true or false, got {_got(value)}")
    return value


def _score(body: dict[str, Any]) -> float | None:
    value = body.get("score")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad("score", f"`score` must be a number, got {_got(value)}")
    if not math.isfinite(value):
        raise _bad("score", "`score` must be a finite number")
    return float(value)


def _metadata(body: dict[str, Any], limits: JsonLimits) -> dict[str, Any] | None:
    value = body.get("metadata")
    return None if value is None else check_metadata(value, limits, "metadata")


def validate_feedback(body: Any, limits: JsonLimits | None = None) -> FeedbackInput:
    """Check a feedback body; every mistake is a 400 that names the field."""
    if not isinstance(body, dict):
        raise InvalidRequestError(f"request body must be a JSON object, got {_got(body)}")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise _bad(
            unknown[0],
            f"unknown field(s): {', '.join(unknown)} (allowed: {', '.join(FIELDS)})",
        )
    parsed = FeedbackInput(
        request_id=_text(body, "request_id", MAX_REQUEST_ID),
        task_id=_text(body, "task_id", MAX_TASK_ID),
        success=_success(body),
        score=_score(body),
        comment=_text(body, "comment", MAX_COMMENT),
        metadata=_metadata(body, limits or JsonLimits()),
    )
    if parsed.request_id is None and parsed.task_id is None:
        raise _bad("request_id", "feedback needs `request_id` or `task_id` to say what it rates")
    if parsed.success is None and parsed.score is None and parsed.comment is None:
        raise _bad("success", "feedback needs at least one of `success`, `score` or `comment`")
    return parsed


async def _request_row(engine: AsyncEngine, request_id: str) -> Any:
    query = select(u.c.key_id, u.c["metadata"]).where(u.c.request_id == request_id).limit(1)
    async with engine.connect() as conn:
        return (await conn.execute(query)).first()


def _task_of(row: Any, request_id: str, claimed: str | None) -> str:
    """The task key of a rated request; a conflicting ``task_id`` is a 400, not a guess."""
    meta = row.metadata if isinstance(row.metadata, dict) else {}
    own = meta.get("task_id")
    own_task = str(own) if own is not None else None
    if claimed is not None and claimed != own_task:
        sent = f"with task_id {own_task!r}" if own_task is not None else "without a task_id"
        raise _bad(
            "task_id",
            f"request {request_id!r} was sent {sent}, not {claimed!r}; "
            "omit `task_id` or send the request's own",
        )
    return own_task if own_task is not None else request_id


async def record_feedback(
    engine: AsyncEngine,
    key: KeyRecord,
    item: FeedbackInput,
    *,
    flush: Callable[[], Awaitable[None]] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Store one feedback record and return it as the API shows it.

    ``flush`` (the ledger's) is awaited once when the request id is not found
    yet, because a client may rate a response before its usage row is written.
    """
    task_key = item.task_id
    if item.request_id is not None:
        row = await _request_row(engine, item.request_id)
        if row is None and flush is not None:
            await flush()
            row = await _request_row(engine, item.request_id)
        if row is None or (row.key_id != key.id and "admin" not in key.scopes):
            raise NotFoundError(
                f"no request {item.request_id!r} made with this key", param="request_id"
            )
        task_key = _task_of(row, item.request_id, item.task_id)
    record = {
        "id": "fb_" + str(ULID()).lower(),
        "created_at": now or datetime.now(UTC),
        "request_id": item.request_id,
        "task_id": task_key,
        "key_id": key.id,
        "success": item.success,
        "score": item.score,
        "comment": item.comment,
        "metadata": item.metadata,
    }
    async with engine.begin() as conn:
        await conn.execute(fb.insert().values(**record))
    return public(record)


def public(record: dict[str, Any]) -> dict[str, Any]:
    """The API shape of a stored feedback record."""
    return {
        "id": record["id"],
        "object": "feedback",
        "created_at": record["created_at"].isoformat(),
        "request_id": record["request_id"],
        "task_id": record["task_id"],
        "key_id": record["key_id"],
        "success": record["success"],
        "score": record["score"],
        "comment": record["comment"],
        "metadata": record["metadata"],
    }
