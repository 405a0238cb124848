"""The playground's engine: one chat request through the gateway pipeline, in process,
as the signed-in principal, re-framed as the console's own server-sent events.

The request takes the same stages as ``POST /v1/chat/completions`` (prompt
rendering, model access, team/user scopes, rate limits, budget reservations,
guards, cache, usage row, trace), with the principal's own key as the caller:
a named admin key spends as itself (its model list, limits, budget and team
apply); the configured admin key spends as the pseudo-key ``bootstrap``,
unrestricted like the key itself. Events sent to the page:

``delta``  ``{"text": ...}`` for each piece of the answer, as it arrives;
``done``   ``{"request_id", "trace_id", "status", "cost", "cost_pico", "cache_hit"}``;
``error``  ``{"message", "request_id"}`` when the stream failed midway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from pilothouse.console.auth import Session
from pilothouse.console.formatting import usd
from pilothouse.errors import InvalidRequestError, OverloadedError, PermissionDeniedError
from pilothouse.gateway import intake, pipeline, validate
from pilothouse.gateway.context import RequestContext
from pilothouse.gateway.routes_openai import _stream, admit_body
from pilothouse.gateway.runtime import Runtime
from pilothouse.gateway.sse import ManagedStream
from pilothouse.gateway.sse_reframe import split_frames
from pilothouse.limits.keys import KeyRecord
from pilothouse.providers.base import JSON
from pilothouse.telemetry.tracecontext import parse_traceparent

BOOTSTRAP_KEY_ID = "bootstrap"
MAX_MESSAGE_CHARS = 32_000
MAX_TOKENS_CEILING = 32_768


async def principal_key(rt: Runtime, session: Session) -> KeyRecord:
    """The key the principal's playground requests are made and billed with."""
    p = session.principal
    if p.key_id is None:  # the configured admin key: unrestricted, billed as `bootstrap`
        return KeyRecord(
            id=BOOTSTRAP_KEY_ID, name=p.name, prefix="", scopes=frozenset({"inference"}),
            models=None, rpm=None, tpm=None,
        )  # fmt: skip
    record = await rt.keys.get(p.key_id)
    if record.expires_at is not None and record.expires_at <= datetime.now(UTC):
        raise PermissionDeniedError("your key has expired", code="key_expired")
    if "inference" not in record.scopes:
        raise PermissionDeniedError(
            f"your key `{record.name}` has no inference scope, so it cannot send requests "
            "(give it the inference scope, or sign in with a key that has it)",
            code="not_inference",
        )
    return record


def allowed_aliases(rt: Runtime, key: KeyRecord) -> list[str]:
    return [alias for alias in sorted(rt.router.routes) if key.allows(alias)]


def _bounded_int(form: dict[str, str], name: str, low: int, high: int) -> int | None:
    raw = form.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        message = f"`{name}` must be a whole number from {low} to {high}"
        raise InvalidRequestError(message, param=name)
    return int(raw)


def _temperature(form: dict[str, str]) -> float | None:
    raw = form.get("temperature", "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 2.0:
        raise InvalidRequestError("`temperature` must be a number from 0 to 2", param="temperature")
    return value


def _variables(form: dict[str, str]) -> dict[str, Any] | None:
    raw = form.get("variables", "").strip()
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequestError(
            'prompt variables must be a JSON object, e.g. {"city": "Oslo"}', param="variables"
        )
    return value


def target_of(form: dict[str, str]) -> str:
    target = form.get("target", "").strip()
    if not target:
        raise InvalidRequestError(
            "choose a model alias or a prompt version (prompt:NAME@LABEL or prompt:NAME@N)",
            param="target",
        )
    return target[:300]


def request_body(form: dict[str, str], messages: list[JSON] | None = None) -> JSON:
    """The chat body a playground form means; ``messages`` replaces the typed ones (replay)."""
    target = target_of(form)
    if messages is None:
        messages = []
        system = form.get("system", "").strip()
        if system:
            messages.append({"role": "system", "content": system[:MAX_MESSAGE_CHARS]})
        text = form.get("message", "").strip()
        if text:
            messages.append({"role": "user", "content": text[:MAX_MESSAGE_CHARS]})
        if not messages and not target.startswith("prompt:"):
            raise InvalidRequestError("type a message to send", param="message")
    body: JSON = {
        "model": target,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    max_tokens = _bounded_int(form, "max_tokens", 1, MAX_TOKENS_CEILING)
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    temperature = _temperature(form)
    if temperature is not None:
        body["temperature"] = temperature
    variables = _variables(form)
    if variables is not None:
        body["prompt_variables"] = variables
    return body


def _event(name: str, data: JSON) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _done(ctx: RequestContext) -> bytes:
    return _event(
        "done",
        {
            "request_id": ctx.request_id,
            "trace_id": ctx.trace_id,
            "status": ctx.status,
            "cost": usd(ctx.cost_pico),
            "cost_pico": str(ctx.cost_pico),
            "cache_hit": ctx.cache_hit,
            "alias": ctx.alias,
            "prompt": ctx.prompt and f"{ctx.prompt['name']}@{ctx.prompt['version']}",
        },
    )


def _reframe(data: bytes, ctx: RequestContext) -> tuple[list[bytes], bytes]:
    """The gateway's OpenAI chunks as ``delta``/``error`` events (keep-alives pass through)."""
    out: list[bytes] = []
    frames, rest = split_frames(data)
    for kind, value in frames:
        if kind == "comment":
            out.append(value)
        elif kind == "error":
            message = str(value.get("message", "the stream failed"))
            out.append(_event("error", {"message": message, "request_id": ctx.request_id}))
        elif kind == "chunk":
            for choice in value.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if choice.get("index", 0) == 0 and isinstance(text, str) and text:
                    out.append(_event("delta", {"text": text}))
    return out, rest


async def start(
    rt: Runtime, session: Session, request: Request, body: JSON, metadata: JSON
) -> tuple[RequestContext, Response]:
    """Admit the request (4xx raised here, before any byte is sent) and open its stream.

    On an exception the caller still owns ``ctx``: :func:`abort` records it.
    """
    ctx = RequestContext(request_id=pipeline.new_request_id(), endpoint="chat")
    ctx.trace_id, ctx.parent_span_id = parse_traceparent(None)
    try:
        if rt.draining:
            raise OverloadedError("the gateway is shutting down; retry shortly")
        ctx.key = await principal_key(rt, session)
        intake.take_key_slot(rt, ctx)
        intake.take_gateway_slot(rt, ctx)
        ctx.metadata = metadata
        admitted, route = await admit_body(rt, ctx, body, validate.chat_request)
        ctx.stream = True
        response = await _stream(rt, ctx, admitted, route, request)
    except BaseException as exc:
        abort(rt, ctx, exc)
        raise
    return ctx, response


def abort(rt: Runtime, ctx: RequestContext, exc: BaseException) -> None:
    """A refused request is recorded like the gateway's (usage row, trace), then released."""
    pipeline.fail(ctx, exc)
    pipeline.scrub_failure(rt, ctx, exc)
    pipeline.finish(rt, ctx)
    intake.release(rt, ctx)


def closer(rt: Runtime, ctx: RequestContext, response: Response) -> Callable[[], None]:
    """Settles the request exactly once, whether or not the page read the whole stream."""
    if isinstance(response, ManagedStream):
        return response.on_close  # ChatStream.close: idempotent, prices usage, queues the row
    done: list[bool] = []

    def close() -> None:
        if not done:
            done.append(True)
            pipeline.finish(rt, ctx)
            intake.release(rt, ctx)

    return close


async def relay(
    ctx: RequestContext, response: Response, close: Callable[[], None]
) -> AsyncIterator[bytes]:
    """The answer as console events, then ``done`` once the usage and cost are settled."""
    try:
        if isinstance(response, ManagedStream):
            pending = b""
            async for data in response.body_iterator:
                raw = data if isinstance(data, bytes) else str(data).encode()
                out, pending = _reframe(pending + raw, ctx)
                if out:
                    yield b"".join(out)
        else:  # a cache hit: the whole answer at once
            out, _ = _reframe(bytes(response.body), ctx)
            yield b"".join(out)
    finally:
        close()
    yield _done(ctx)
