"""One batch line through the live pipeline: ``routes_openai.admit_body``, then the call.

The principal is the key that created the batch (re-read from the store, so a
revoked or expired key stops its batch and a changed limit applies at once);
model access, RPM/TPM, worst-case budget reservation, guards, routing with
fallbacks, cost and the trace are the live request's own code.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pilothouse.errors import (
    AuthenticationError,
    InvalidRequestError,
    PermissionDeniedError,
    PilothouseError,
    RateLimitError,
    retryable_status,
)
from pilothouse.gateway import admission, pipeline, validate
from pilothouse.gateway import routes_completions as legacy
from pilothouse.gateway import routes_moderations as moderation
from pilothouse.gateway.context import RequestContext
from pilothouse.gateway.http_errors import error_body
from pilothouse.gateway.responses_translate import output_items, response_object
from pilothouse.gateway.routes_openai import admit_body
from pilothouse.gateway.routes_responses import Exchange
from pilothouse.gateway.runtime import Runtime
from pilothouse.limits.keys import KeyRecord, expired
from pilothouse.providers import text_completions as tc
from pilothouse.providers.base import JSON
from pilothouse.telemetry.tracecontext import new_trace_id

log = logging.getLogger("pilothouse.batches")
CIRCUIT_WAIT_S = 5.0
CHECKS = {"embeddings": validate.embeddings_request, "moderations": validate.moderation_request}


@dataclass(slots=True)
class Outcome:
    """How one try of a line ended: the answer (or error body) and what to do next."""

    ctx: RequestContext
    status: int
    body: JSON
    # Refused before any upstream call (RPM/TPM, every circuit open): wait, then try again.
    wait_s: float | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.wait_s is None and retryable_status(self.status) and self.status != 429


def check_key(key: KeyRecord) -> None:
    """The batch's key must still be valid: revoked or expired stops its remaining lines."""
    if key.revoked:
        raise AuthenticationError("the API key that created this batch was revoked")
    if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
        raise expired(key)
    if "inference" not in key.scopes:
        raise PermissionDeniedError("the batch's key has no inference scope", code="not_inference")


async def run_line(
    rt: Runtime, key: KeyRecord, endpoint: str, body: JSON, metadata: dict[str, Any]
) -> Outcome:
    ctx = RequestContext(request_id=pipeline.new_request_id(), endpoint=endpoint)
    ctx.trace_id = new_trace_id()
    ctx.key = key
    ctx.metadata = metadata
    try:
        answer = await _serve(rt, ctx, dict(body))
        return Outcome(ctx, 200, answer)
    except asyncio.CancelledError:  # the replica is stopping: the line stays pending
        release(rt, ctx)
        raise
    except Exception as exc:
        pipeline.fail(ctx, exc)
        pipeline.scrub_failure(rt, ctx, exc)
        if not isinstance(exc, PilothouseError):
            log.error("batch line %s failed unexpectedly", ctx.request_id, exc_info=exc)
            exc = PilothouseError("internal error; the request id is in the result")
            exc.code = "internal_error"
        wait = None
        # The key's, its user's or its team's RPM/TPM (``team_rate_limit_exceeded`` …): wait.
        if isinstance(exc, RateLimitError) and (exc.code or "").endswith("rate_limit_exceeded"):
            wait = exc.retry_after
        elif exc.code == "circuit_open":  # no upstream was called: wait for a half-open probe
            wait = min(rt.settings.routing.breaker.cooldown_s, CIRCUIT_WAIT_S)
        return Outcome(ctx, exc.status, error_body(exc), wait)


def release(rt: Runtime, ctx: RequestContext) -> None:
    """Give back what a try reserved when it leaves no result (a wait, or a stop)."""
    if admission.needs_settlement(ctx):
        rt.spawn(admission.settle(rt, ctx))


async def _serve(rt: Runtime, ctx: RequestContext, body: JSON) -> JSON:
    key = ctx.key
    assert key is not None
    check_key(key)
    if body.get("stream") not in (None, False):
        raise InvalidRequestError("`stream` is not supported in a batch line", param="stream")
    exchange: Exchange | None = None
    if ctx.endpoint == "responses":
        exchange = Exchange(rt, ctx)
        body = await exchange.translate(body)
    elif ctx.endpoint == "completions":
        body, ctx.completion = legacy.to_chat(body)
        alias = body.get("model")
        if isinstance(alias, str) and alias in rt.router.routes:  # before anything is reserved
            legacy.check_targets(rt.router.routes[alias], ctx.completion)
    elif ctx.endpoint == "moderations":
        body = moderation.with_default_model(rt, body)
    check = CHECKS.get(ctx.endpoint, validate.chat_request)
    body, route = await admit_body(rt, ctx, body, check)
    if ctx.endpoint == "moderations":
        return await moderation.moderate(rt, ctx, body)
    if ctx.endpoint == "embeddings":
        body = await rt.guards.check_embeddings_input(ctx, body)
        return await pipeline.embeddings(rt, ctx, body)
    completion = await pipeline.chat_completion(rt, ctx, body, route, {})
    if exchange is not None:
        return await _response(exchange, ctx, completion)
    if ctx.endpoint == "completions":
        return tc.chat_to_text(completion)
    return completion


async def _response(exchange: Exchange, ctx: RequestContext, completion: JSON) -> JSON:
    """The Responses API object for a translated chat answer (as ``POST /v1/responses``)."""
    items, finish = output_items(exchange.response_id, completion)
    body = response_object(
        exchange.response_id,
        exchange.original,
        model=str(completion.get("model") or ctx.alias),
        output=items,
        usage=ctx.usage,
        status="completed",
        finish_reason=finish,
    )
    return await exchange.keep(body, items)
