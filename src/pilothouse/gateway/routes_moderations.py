"""``POST /v1/moderations``: passed to an upstream that has a moderation endpoint.

Same door as every model call (key, throttle, RPM, routing with retries,
fallbacks and breakers, one usage record, a trace); the alias's input guards run
only if a policy is attached to it (leave none on an alias a guard itself calls).
Without ``model`` the request goes to the alias
named by ``routing.moderation_model``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.errors import InvalidRequestError
from pilothouse.gateway import pipeline, validate
from pilothouse.gateway.context import RequestContext
from pilothouse.gateway.routes_openai import _prepare, json_response, model_endpoint
from pilothouse.gateway.runtime import Runtime
from pilothouse.providers.base import JSON, Usage


def moderates(provider: object) -> bool:
    return callable(getattr(provider, "moderate", None))


def with_default_model(rt: Runtime, body: JSON) -> JSON:
    """The body with ``routing.moderation_model`` filled in; refuses an alias that cannot
    moderate before anything is reserved (also used by batch lines)."""
    if body.get("model") is None:
        default = rt.settings.routing.moderation_model
        if default is None:
            raise InvalidRequestError(
                "`model` is required (no `routing.moderation_model` is configured)",
                param="model",
            )
        body = {**body, "model": default}
    alias = body.get("model")
    route = rt.router.routes.get(alias) if isinstance(alias, str) else None
    if route is not None:
        missing = [t.label for t in route.targets if not moderates(t.provider)]
        if missing:
            raise InvalidRequestError(
                f"model `{alias}` has no moderation endpoint ({missing[0]})", param="model"
            )
    return body


async def moderate(rt: Runtime, ctx: RequestContext, body: JSON) -> JSON:
    """The admitted request to the router; moderation reports no tokens and costs nothing.

    The text goes to a provider like any other input, so the alias's guard policy (if
    one is attached) applies first, as on /v1/embeddings: redact, pseudonymize or block
    before it leaves (tests/integration/test_guard_matrix.py)."""
    body = await rt.guards.check_embeddings_input(ctx, body)
    result = await rt.router.moderate(ctx, body)
    ctx.usage = Usage()
    ctx.response_body = {"model": result.get("model"), "flagged": _flagged(result)}
    return result


async def moderations(rt: Runtime, ctx: RequestContext, request: Request) -> Response:
    async def translate(body: JSON) -> JSON:
        return with_default_model(rt, body)

    body, _route = await _prepare(
        rt, ctx, request, validate.moderation_request, translate=translate
    )
    result = await moderate(rt, ctx, body)
    return json_response(result, pipeline.model_headers(ctx))


def _flagged(result: JSON) -> bool:
    return any(isinstance(r, dict) and r.get("flagged") for r in result.get("results") or [])


def routes() -> list[Route]:
    endpoint = model_endpoint("moderations", moderations)
    return [
        Route("/v1/moderations", endpoint, methods=["POST"]),
        Route("/moderations", endpoint, methods=["POST"]),
    ]
