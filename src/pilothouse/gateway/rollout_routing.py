"""Rollouts on the request path: pick the arm, serve it, fall back, shadow, record.

Called from ``routes_openai._prepare`` (every chat ingress goes through it):
a ``prompt:NAME@LABEL`` request or a request for an alias under a running
rollout is assigned an arm by the sticky hash. The candidate arm renders the
candidate version (prompt rollouts) or routes to the candidate alias. With
``on_candidate_error: baseline`` a candidate that fails after the router's
own retries is retried once on the baseline, so callers do not pay for a bad
canary; the failure still counts on the candidate's arm. Shadow rollouts
serve the baseline and then, off the request path, send the same request to
the candidate; its answer is dropped and its cost, latency and errors go to
the candidate's arm (and to the caller's budget only with ``bill_shadow``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pilothouse.errors import PilothouseError, UpstreamError
from pilothouse.gateway.context import RequestContext
from pilothouse.gateway.runtime import Runtime
from pilothouse.limits.money import pico_to_usd
from pilothouse.providers.base import JSON
from pilothouse.releases import serving
from pilothouse.rollout.model import Rollout, assignment_point, sticky_id


@dataclass(slots=True)
class Assignment:
    rollout: Rollout
    arm: str  # what serves the answer: baseline | candidate
    original: JSON  # the body as the client sent it (to re-render the baseline)
    baseline_alias: str | None = None
    shadow: bool = False  # this request also goes to the candidate, answer dropped
    is_shadow_call: bool = False  # this context *is* the shadow call
    fell_back: bool = False


def _arm(rt: Runtime, ctx: RequestContext, ro: Rollout) -> tuple[str, bool]:
    sid = sticky_id(ro.sticky, ctx.metadata, ctx.key.id if ctx.key else None, ctx.request_id)
    point = assignment_point(ro.id, sid)
    if ro.mode == "shadow":
        return "baseline", point < ro.share
    if ro.state == "promoted":
        return "candidate", False
    return ro.arm_for(point), False


async def prompt_request(rt: Runtime, ctx: RequestContext, body: JSON) -> JSON:
    """Render a ``prompt:`` request, with the candidate version if the rollout says so."""
    name, ref = serving.parse_ref(body["model"])
    ro = rt.rollouts.lookup(f"prompt:{name}@{ref}")
    if ro is None or ro.state != "running":
        return await serving.apply(rt.prompt_cache, ctx, body)
    arm, shadow = _arm(rt, ctx, ro)
    ctx.rollout = Assignment(ro, arm, body, shadow=shadow)
    if arm == "candidate":
        return await serving.apply(rt.prompt_cache, ctx, body, version_number=ro.candidate_version)
    return await serving.apply(rt.prompt_cache, ctx, body)


def alias_request(rt: Runtime, ctx: RequestContext, body: JSON) -> None:
    """Switch ``ctx.alias`` to the candidate alias when this request draws it."""
    if ctx.rollout is not None or ctx.alias is None:
        return
    ro = rt.rollouts.lookup(ctx.alias)
    if ro is None or ro.candidate_alias not in rt.router.routes:
        return
    arm, shadow = _arm(rt, ctx, ro)
    ctx.rollout = Assignment(ro, arm, body, baseline_alias=ctx.alias, shadow=shadow)
    if arm == "candidate":
        ctx.alias = ro.candidate_alias


def arm_headers(ctx: RequestContext) -> dict[str, str]:
    a: Assignment | None = ctx.rollout
    if a is None:
        return {}
    return {"x-pilothouse-arm": a.arm, "x-pilothouse-rollout": a.rollout.id}


async def fallback_body(
    rt: Runtime, ctx: RequestContext, exc: BaseException, request: JSON
) -> JSON | None:
    """The baseline's request after a failed candidate, or None when there is no fallback."""
    a: Assignment | None = ctx.rollout
    if (
        a is None
        or a.arm != "candidate"
        or a.is_shadow_call
        or a.rollout.options.on_candidate_error != "baseline"
        or not isinstance(exc, UpstreamError)
    ):
        return None
    status = exc.status if isinstance(exc, PilothouseError) else 502
    record(rt, ctx, status=status)  # the candidate's failure counts on its arm
    a.arm, a.fell_back = "baseline", True
    if a.rollout.kind == "prompt":
        body = await serving.apply(rt.prompt_cache, ctx, a.original)
        return await rt.guards.check_chat_input(ctx, body)
    ctx.alias = a.baseline_alias
    return request


def record(rt: Runtime, ctx: RequestContext, *, status: int | None = None) -> None:
    """Add this request to its arm's counters (in memory; flushed by the manager)."""
    a: Assignment | None = ctx.rollout
    if a is None:
        return
    if a.fell_back and status is None:
        return  # the baseline served after a candidate failure: a sample of neither arm
    arm = "candidate" if a.is_shadow_call else a.arm
    rt.rollouts.record_request(
        a.rollout.id,
        arm,
        ctx.request_id,
        status=ctx.status if status is None else status,
        latency_s=ctx.elapsed(),
        ttft_s=ctx.ttft_s,
        cost_usd=float(pico_to_usd(ctx.cost_pico)) if ctx.cost_pico else 0.0,
    )


def usage_fields(ctx: RequestContext) -> tuple[str | None, str | None]:
    a: Assignment | None = ctx.rollout
    if a is None:
        return None, None
    return a.rollout.id, ("candidate" if a.is_shadow_call else a.arm)


async def shadow_call(rt: Runtime, parent: RequestContext) -> None:
    """Send the parent's request to the candidate; record it on the candidate arm only."""
    from pilothouse.gateway import pipeline

    a: Assignment = parent.rollout
    ro = a.rollout
    ctx = RequestContext(request_id=pipeline.new_request_id(), endpoint=parent.endpoint)
    ctx.trace_id = ""
    ctx.key = parent.key if ro.bill_shadow else None
    ctx.principal = parent.principal  # a shadow retrieval reads as the same end user
    ctx.metadata = {**(parent.metadata or {}), "shadow_of": parent.request_id}
    ctx.rollout = Assignment(ro, "candidate", a.original, a.baseline_alias, is_shadow_call=True)
    try:
        if ro.kind == "prompt":
            body = await serving.apply(
                rt.prompt_cache, ctx, a.original, version_number=ro.candidate_version
            )
        else:
            body = dict(a.original)
        ctx.alias = str(body.get("model")) if ro.kind == "prompt" else ro.candidate_alias
        body["stream"] = False
        body.pop("stream_options", None)
        route = rt.router.route(ctx.alias or "")
        ctx.deadline = rt.router.deadline_for(route)
        ctx.request_body = body
        body = await rt.guards.check_chat_input(ctx, body)
        result = await rt.router.chat(ctx, body)
        ctx.response_body = result.body
        usage = result.usage
        if usage.estimated and not (usage.input_tokens or usage.output_tokens):
            usage = pipeline.estimated_usage(body, pipeline.completion_text(result.body))
        pipeline.price_usage(rt, ctx, usage)
        ctx.ttft_s = ctx.elapsed()
    except Exception as exc:
        pipeline.fail(ctx, exc)
    finally:
        if ctx.key is not None and parent.budget_slots:
            # bill_shadow: nothing was reserved up front (a shadow call must never be refused
            # after the caller was served); settling its cost as its reservation charges the
            # caller's budgets (key, and team/user when it has them) through the usual path
            # without marking the row as over its reservation.
            ctx.budget_slots = parent.budget_slots
            ctx.reserved_pico = ctx.cost_pico
        pipeline.finish(rt, ctx)


def after_response(rt: Runtime, ctx: RequestContext) -> None:
    """From ``pipeline.finish``: count the request on its arm; start its shadow call."""
    a: Assignment | None = ctx.rollout
    if a is None:
        return
    record(rt, ctx)
    if a.shadow and not a.is_shadow_call and ctx.status == 200 and ctx.endpoint == "chat":
        rt.spawn(shadow_call(rt, ctx))
