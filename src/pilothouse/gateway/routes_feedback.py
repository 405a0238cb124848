"""Cost governance routes: outcome feedback (inference keys) and cost reports (admin)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.costs.feedback import record_feedback, validate_feedback
from pilothouse.costs.report import cost_report
from pilothouse.costs.usage_query import parse_time
from pilothouse.gateway import admission, validate
from pilothouse.gateway.http_errors import error_response
from pilothouse.gateway.pipeline import new_request_id
from pilothouse.gateway.routes_admin import admin
from pilothouse.gateway.routes_openai import json_response, read_body
from pilothouse.gateway.runtime import Runtime
from pilothouse.inputs import JsonLimits


async def post_feedback(request: Request) -> Response:
    """``POST /v1/feedback``: 201 with the stored record; 400/401/404 say precisely why not."""
    rt: Runtime = request.app.state.runtime
    request_id = new_request_id()
    try:
        key = await admission.authenticate(rt, request)
        limits = JsonLimits.of(rt.settings.server)
        body = validate.parse_json(await read_body(request, limits.max_bytes), limits)
        item = validate_feedback(body, limits)
        stored = await record_feedback(rt.engine, key, item, flush=rt.ledger.flush)
    except Exception as exc:  # rendered in the one place errors become responses
        return error_response(exc, request_id)
    return json_response(stored, {"x-request-id": request_id}, status=201)


async def costs_report(rt: Runtime, request: Request) -> Response:
    """``GET /admin/reports/costs?by=team,model&since=7d&until=...``."""
    q = request.query_params
    await rt.ledger.flush()
    report = await cost_report(
        rt.engine,
        by=q.get("by") or "",
        since=parse_time(q.get("since"), "since"),
        until=parse_time(q.get("until"), "until"),
    )
    return json_response(report)


def routes() -> list[Route]:
    return [
        Route("/v1/feedback", post_feedback, methods=["POST"]),
        Route("/admin/reports/costs", admin(costs_report, "costs.read"), methods=["GET"]),
    ]
