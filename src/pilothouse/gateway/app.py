"""``build_app(settings)``: the ASGI application for one gateway."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse import __version__, console
from pilothouse.batches import routes as batch_routes
from pilothouse.batches.runner import BatchRunner
from pilothouse.config.schema import Settings
from pilothouse.errors import NotFoundError, PilothouseError
from pilothouse.gateway import (
    openapi,
    routes_admin,
    routes_anthropic,
    routes_completions,
    routes_feedback,
    routes_moderations,
    routes_openai,
    routes_privacy,
    routes_prompts,
    routes_releases,
    routes_responses,
    routes_rollouts,
    routes_routing,
    routes_teams,
    routes_telemetry,
)
from pilothouse.gateway.http_errors import error_response
from pilothouse.gateway.intake import HeaderLimits
from pilothouse.gateway.routes_openai import json_response
from pilothouse.gateway.runtime import Runtime
from pilothouse.rag.routes import routes as rag_routes


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok", "version": __version__})


async def readyz(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    checks: dict[str, str] = {}
    try:
        async with rt.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["store"] = "ok"
    except Exception as exc:
        checks["store"] = f"unreachable: {type(exc).__name__}"
    if rt.redis is not None:
        try:
            await rt.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"unreachable: {type(exc).__name__}"
    if rt.draining or rt.leaving:
        checks["gateway"] = "draining"
    checks["usage_writer"] = rt.ledger.health_check()
    checks["trace_writer"] = rt.telemetry.traces.health_check()
    ready = all(v == "ok" for v in checks.values())
    if not rt.ledger.store_ok:
        checks["ledger"] = "spooling to disk"
    body = {
        "ready": ready,
        "checks": checks,
        "in_flight": rt.in_flight,
        "route_version": rt.route_version,
        "config_hash": rt.config_hash,
    }
    return json_response(body, status=200 if ready else 503)


async def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        err: PilothouseError = NotFoundError(f"no route for {request.method} {request.url.path}")
    else:
        err = PilothouseError(str(exc.detail))
        err.status = exc.status_code
        err.type = "invalid_request_error"
        err.code = "method_not_allowed" if exc.status_code == 405 else None
    return error_response(err)


async def unhandled(request: Request, exc: Exception) -> Response:
    return error_response(exc)


def build_app(settings: Settings, runtime: Runtime | None = None) -> Starlette:
    """Build the app; the runtime starts and stops with the ASGI lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        rt = runtime or Runtime(settings)
        app.state.runtime = rt
        await rt.start()
        app.state.batch_runner = runner = BatchRunner(rt)
        await runner.start()
        try:
            yield
        finally:
            await runner.stop()  # in-flight batch lines finish before the runtime drains
            await rt.stop()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        *routes_openai.routes(),
        *routes_anthropic.routes(),
        *routes_completions.routes(),
        *routes_moderations.routes(),
        *routes_privacy.routes(),
        *routes_responses.routes(),
        *routes_admin.routes(),
        *routes_teams.routes(),
        *console.routes(),
        *routes_telemetry.routes(),
        *routes_feedback.routes(),
        *routes_releases.routes(),
        *routes_prompts.routes(),
        *routes_rollouts.routes(),
        *routes_routing.routes(),
        *rag_routes(),
        *batch_routes.routes(),
        *openapi.routes(),  # last: documents every route above (gateway/openapi_ops.py)
    ]
    server = settings.server
    header_limits = Middleware(
        HeaderLimits, max_count=server.max_header_count, max_bytes=server.max_header_bytes
    )
    return Starlette(
        routes=routes,
        middleware=[header_limits],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_exception, Exception: unhandled},
    )
