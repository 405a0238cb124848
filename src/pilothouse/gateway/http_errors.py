"""The one place where exceptions become HTTP responses (OpenAI-shaped, no tracebacks)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.responses import Response

from pilothouse.errors import PilothouseError

log = logging.getLogger("pilothouse.gateway")


def error_body(exc: PilothouseError) -> dict[str, Any]:
    error: dict[str, Any] = {
        "message": exc.message,
        "type": exc.type,
        "param": exc.param,
        "code": exc.code,
    }
    details = getattr(exc, "details", None)  # e.g. gate_not_met's `missing`
    if isinstance(details, dict):
        error.update({k: v for k, v in details.items() if k not in error})
    return {"error": error}


def error_response(exc: BaseException, request_id: str | None = None) -> Response:
    """Render any exception; unexpected ones become a generic 500 and are logged here."""
    if not isinstance(exc, PilothouseError):
        log.error("unhandled error in request %s", request_id, exc_info=exc)
        exc = PilothouseError("internal error; the request id is in the x-request-id header")
        exc.code = "internal_error"
    headers = dict(exc.headers)
    if request_id:
        headers["x-request-id"] = request_id
    return Response(
        orjson.dumps(error_body(exc)),
        status_code=exc.status,
        media_type="application/json",
        headers=headers,
    )


def sse_error_event(exc: BaseException) -> bytes:
    """An in-stream error for failures after the response has started."""
    if not isinstance(exc, PilothouseError):
        exc = PilothouseError("internal error")
    return b"data: " + orjson.dumps(error_body(exc)) + b"\n\n"
