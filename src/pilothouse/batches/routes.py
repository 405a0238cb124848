"""``/v1/files`` and ``/v1/batches``: the OpenAI Files and Batch APIs, field for field.

Files and batches belong to the key that created them: another key gets a 404
for them and never sees them in a list; an admin principal (the config admin
key, or a key with the ``admin`` role) sees every one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.batches import multipart
from pilothouse.batches.jsonl import ENDPOINTS, parse_input
from pilothouse.batches.objects import TERMINAL, batch_object, file_object, page
from pilothouse.batches.store import BatchStore, check_purpose
from pilothouse.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
)
from pilothouse.gateway import admission, validate
from pilothouse.gateway.http_errors import error_response
from pilothouse.gateway.pipeline import new_request_id
from pilothouse.gateway.routes_openai import json_response, read_body
from pilothouse.gateway.runtime import Runtime
from pilothouse.inputs import JsonLimits, one_of, query_int
from pilothouse.limits.keys import KeyRecord

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FORM_OVERHEAD = 64 * 1024  # multipart headers and boundaries around the file
MAX_METADATA_PAIRS = 16


@dataclass(frozen=True, slots=True)
class Caller:
    owner: str | None  # the key id whose files and batches it sees; None: an admin sees all
    key: KeyRecord | None  # the inference key it acts as (creates), if any

    def acting_key(self) -> KeyRecord:
        if self.key is None:
            raise PermissionDeniedError(
                "files and batches are created by an inference key, whose limits and budget "
                "the batch runs under; use one",
                code="not_inference",
            )
        return self.key


async def caller(rt: Runtime, request: Request) -> Caller:
    secret = admission.bearer(request.headers)
    if secret is None:
        raise AuthenticationError(
            "missing API key: send `Authorization: Bearer <key>`", code="missing_api_key"
        )
    record = await admission.check_secret(
        rt, secret, admission.source_of(request), message="invalid or revoked API key",
        bootstrap=True,
    )  # fmt: skip
    if record is None:  # the config admin key
        return Caller(None, None)
    inference = "inference" in record.scopes
    if record.admin_role == "admin":
        return Caller(None, record if inference else None)
    if not inference:
        raise PermissionDeniedError(
            "this key has no inference scope (it is for " + ", ".join(sorted(record.scopes)) + ")",
            code="not_inference",
        )
    return Caller(record.id, record)


def _path_id(request: Request, name: str) -> str:
    """A path id; anything not shaped like one (NUL, 10 kB) is simply not found."""
    value = str(request.path_params[name])
    if not _ID.match(value):
        what = "file" if name == "file_id" else "batch"
        raise NotFoundError(f"no {what} with id {value[:80]!r}", param=name)
    return value


def _query_id(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is not None and not _ID.match(value):
        raise InvalidRequestError(f"`{name}` must be an id from a previous page", param=name)
    return value


def _store(request: Request) -> BatchStore:
    return BatchStore(request.app.state.runtime.engine)


def _wake(request: Request) -> None:
    runner = getattr(request.app.state, "batch_runner", None)
    if runner is not None:
        runner.wake()


def _handler(fn: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        rt: Runtime = request.app.state.runtime
        request_id = new_request_id()
        try:
            who = await caller(rt, request)
            body, status = await fn(rt, request, who)
        except Exception as exc:
            return error_response(exc, request_id)
        if isinstance(body, Response):
            body.headers["x-request-id"] = request_id
            return body
        return json_response(body, {"x-request-id": request_id}, status)

    return endpoint


# -- files ------------------------------------------------------------------------------


async def upload_file(rt: Runtime, request: Request, who: Caller) -> tuple[Any, int]:
    key = who.acting_key()
    limit = rt.settings.batches.max_file_bytes
    try:
        raw = await read_body(request, limit + FORM_OVERHEAD)
    except PayloadTooLargeError:
        raise _too_large(limit) from None
    form = multipart.parse_form(request.headers.get("content-type"), raw)
    purpose = form.get("purpose")
    check_purpose(purpose.content.decode("utf-8", "replace") if purpose else None)
    upload = form.get("file")
    if upload is None:
        raise InvalidRequestError("the form has no `file` field", param="file")
    if len(upload.content) > limit:
        raise _too_large(limit, len(upload.content))
    filename = "".join(ch for ch in upload.filename or "" if ch.isprintable())[:255]
    row = await _store(request).create_file(
        key.id, "batch", filename or "upload.jsonl", upload.content
    )
    return file_object(row), 200


def _too_large(limit: int, size: int | None = None) -> PayloadTooLargeError:
    what = f"the file is {size} bytes" if size is not None else "the upload is too large"
    return PayloadTooLargeError(
        f"{what}; files may be at most {limit} bytes (batches.max_file_bytes)",
        param="file",
        code="file_too_large",
    )


async def list_files(rt: Runtime, request: Request, who: Caller) -> tuple[Any, int]:
    q = request.query_params
    purpose = q.get("purpose")
    if purpose is not None:
        purpose = one_of(purpose, "purpose", ("batch", "batch_output"))
    limit = query_int(q.get("limit", "10000"), "limit", 1, 10000)
    order = one_of(q.get("order", "desc"), "order", ("asc", "desc"))
    rows, more = await _store(request).list_files(
        who.owner,
        purpose=purpose,
        after=_query_id(request, "after"),
        limit=limit,
        asc=order == "asc",
    )
    return page([file_object(r) for r in rows], more), 200


async def get_file(rt: Runtime, request: Request, who: Caller) -> tuple[Any, int]:
    row = await _store(request).get_file(_path_id(request, "file_id"), who.owner)
    return file_object(row), 200


async def file_content(rt: Runtime, request: Request, who: Caller) -> tuple[Any, int]:
    content = await _store(request).file_content(_path_id(request, "file_id"), who.owner)
    return Response(content, 200, media_type="application/octet-stream"), 200


async def delete_file(rt: Runtime, request: Request, who: Caller) -> tuple[Any, int]:
    file_id = _path_id(request, "file_id")
    await _store(request).delete_file(file_id, who.owner)
    return {"id": file_id, "object": "file", "deleted": True}, 200


# -- batches ----------------------------------------------------------------------------


def _metadata(value: Any, limits: JsonLimits) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > MAX_METADATA_PAIRS:
        raise InvalidRequestError(
            f"`metadata` must be an object of at most {MAX_METADATA_PAIRS} string pairs",
            param="metadata",
        )
    for k, v in value.items():
        if len(k) > 64 or not isinstance(v, str) or len(v) > 512:
            raise InvalidRequestError(
                "`metadata` keys are at most 64 characters and values strings of at most 512",
                param="metadata",
            )
    return dict(value)


async def create_batch(rt: Runtime, request: Request, who: Caller) -> tuple[Any, int]:
    key = who.acting_key()
    limits = JsonLimits.of(rt.settings.server)
    body = validate.parse_json(await read_body(request, rt.settings.server.max_body_bytes), limits)
    file_id = body.get("input_file_id")
    if not isinstance(file_id, str) or not _ID.match(file_id):
        raise InvalidRequestError("`input_file_id` must be a file id", param="input_file_id")
    endpoint = body.get("endpoint")
    if endpoint not in ENDPOINTS:
        raise InvalidRequestError(
            f"`endpoint` {endpoint!r} is not supported; use one of {sorted(ENDPOINTS)}",
            param="endpoint",
            code="unsupported_endpoint",
        )
    window = body.get("completion_window")
    if window != "24h":
        raise InvalidRequestError(
            f"`completion_window` must be '24h', got {window!r}", param="completion_window"
        )
    metadata = _metadata(body.get("metadata"), limits)
    store = _store(request)
    file = await store.get_file(file_id, key.id)
    if file.purpose != "batch":
        raise InvalidRequestError(
            f"file {file_id} has purpose {file.purpose!r}; a batch needs a file uploaded "
            "with purpose 'batch'",
            param="input_file_id",
        )
    content = await store.file_content(file_id, key.id)
    line_limits = JsonLimits(
        max_bytes=rt.settings.server.max_body_bytes,
        max_depth=limits.max_depth,
        max_metadata_bytes=limits.max_metadata_bytes,
    )
    lines, errors = parse_input(
        content, str(endpoint), max_lines=rt.settings.batches.max_lines, limits=line_limits
    )
    row = await store.create_batch(
        key_id=key.id,
        endpoint=str(endpoint),
        input_file_id=file_id,
        metadata=metadata,
        lines=lines,
        errors=errors,
    )
    _wake(request)
    return batch_object(row, {}), 200


async def _with_counts(store: BatchStore, rows: list[Any]) -> list[dict[str, Any]]:
    counts = await store.line_counts([r.id for r in rows if r.status not in TERMINAL])
    return [batch_object(r, counts.get(r.id)) for r in rows]


async def get_batch(rt: Runtime, request: Request, who: Caller) -> tuple[Any, int]:
    store = _store(request)
    row = await store.get_batch(_path_id(request, "batch_id"), who.owner)
    return (await _with_counts(store, [row]))[0], 200


async def list_batches(rt: Runtime, request: Request, who: Caller) -> tuple[Any, int]:
    q = request.query_params
    limit = query_int(q.get("limit", "20"), "limit", 1, 100)
    store = _store(request)
    rows, more = await store.list_batches(who.owner, after=_query_id(request, "after"), limit=limit)
    return page(await _with_counts(store, rows), more), 200


async def cancel_batch(rt: Runtime, request: Request, who: Caller) -> tuple[Any, int]:
    store = _store(request)
    row = await store.cancel(_path_id(request, "batch_id"), who.owner)
    _wake(request)
    return (await _with_counts(store, [row]))[0], 200


def routes() -> list[Route]:
    return [
        Route("/v1/files", _handler(upload_file), methods=["POST"]),
        Route("/v1/files", _handler(list_files), methods=["GET"]),
        Route("/v1/files/{file_id}", _handler(get_file), methods=["GET"]),
        Route("/v1/files/{file_id}", _handler(delete_file), methods=["DELETE"]),
        Route("/v1/files/{file_id}/content", _handler(file_content), methods=["GET"]),
        Route("/v1/batches", _handler(create_batch), methods=["POST"]),
        Route("/v1/batches", _handler(list_batches), methods=["GET"]),
        Route("/v1/batches/{batch_id}", _handler(get_batch), methods=["GET"]),
        Route("/v1/batches/{batch_id}/cancel", _handler(cancel_batch), methods=["POST"]),
    ]
