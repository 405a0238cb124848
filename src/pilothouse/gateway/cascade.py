"""``strategy: cascade``: try the cheap alias first, escalate when a validator rejects it.

Validators, in order: the answer must validate against the request's
``response_format`` (``json_schema`` with jsonschema, ``json_object`` must be
an object); the output guard must pass it unchanged (a redaction or block
escalates); a judge alias must score it at least ``min_score``. An upstream
failure of a step that is not the last also escalates. Every step's tokens
and cost (the judge's included) land on ``ctx.route.steps``; the request's
usage and cost are their sums, so the ledger, budget and trace carry both
attempts. Streams are not cascaded (a validator needs the whole answer):
they go to the last step (see ``route_policy.select``).
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import orjson

from pilothouse.errors import PilothouseError, UpstreamError
from pilothouse.gateway.context import RequestContext
from pilothouse.gateway.runtime import Runtime
from pilothouse.limits.money import pico_to_str
from pilothouse.providers.base import JSON, ChatResult, Usage
from pilothouse.routing.config import CascadeConfig, JudgeValidator
from pilothouse.tokens import estimate_input

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
JUDGE_PROMPT = (
    "You grade an assistant's answer to a user's request. Reply with one number from 0 "
    "(wrong or useless) to 1 (correct and complete), nothing else."
)


def config_of(rt: Runtime, ctx: RequestContext) -> CascadeConfig | None:
    d = ctx.route
    if d is None or d.policy != "cascade" or ctx.stream:
        return None
    policy = rt.router.route(d.requested).config.routing
    return policy.cascade if policy is not None else None


async def chat(
    rt: Runtime, ctx: RequestContext, request: JSON, cfg: CascadeConfig
) -> tuple[ChatResult, JSON]:
    """The accepted step's result and its output-guarded body; ``ctx`` sums every step."""
    from pilothouse.gateway.pipeline import completion_text, estimated_usage

    decision = ctx.route
    total = Usage()
    total_pico = 0
    last = len(cfg.steps) - 1
    for i, alias in enumerate(cfg.steps):
        ctx.alias = decision.alias = alias
        decision.rule = f"cascade[{i}]"
        step: dict[str, Any] = {"alias": alias}
        decision.steps.append(step)
        try:
            result = await rt.router.chat(ctx, request)
        except UpstreamError as exc:
            step.update(passed=False, failed="upstream", error=exc.code or exc.type)
            if i == last:
                raise
            continue
        usage = result.usage
        if usage.estimated and not (usage.input_tokens or usage.output_tokens):
            usage = estimated_usage(request, completion_text(result.body))
        cost = rt.prices.cost_pico(ctx.upstream_model, usage)
        total, total_pico = _add(total, usage), total_pico + cost
        step.update(
            target=f"{ctx.provider}/{ctx.upstream_model}",
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=pico_to_str(cost),
        )
        ctx.usage, ctx.cost_pico = total, total_pico
        if i == last:  # nothing to escalate to: the guard decides as on any request
            step["passed"] = None
            body = await rt.guards.check_chat_output(ctx, result.body)
            break
        failed, body, judge_pico = await _validate(rt, ctx, cfg, request, result.body, step)
        total_pico += judge_pico
        ctx.cost_pico = total_pico
        step["passed"] = failed is None
        if failed is None:
            break
        step["failed"] = failed
        ctx.response_body = None
    decision.reason = _reason(decision.steps)
    return ChatResult(result.body, total), body


async def _validate(
    rt: Runtime,
    ctx: RequestContext,
    cfg: CascadeConfig,
    request: JSON,
    body: JSON,
    step: dict[str, Any],
) -> tuple[str | None, JSON, int]:
    """(why it failed or None, the guarded body, the judge's cost in pico-USD)."""
    from pilothouse.gateway.pipeline import completion_text

    text = completion_text(body)
    if cfg.json_schema:
        why = schema_problem(request.get("response_format"), text)
        if why is not None:
            step["detail"] = why[:200]
            return "json_schema", body, 0
    guarded = body
    if cfg.guard:
        try:
            guarded = await rt.guards.check_chat_output(ctx, body)
        except PilothouseError:
            return "guard", body, 0
        if completion_text(guarded) != text:
            return "guard", body, 0
    if cfg.judge is not None:
        score, pico = await judge(rt, ctx, cfg.judge, request, text)
        step["judge_score"] = score
        step["judge_cost_usd"] = pico_to_str(pico)
        if score is None or score < cfg.judge.min_score:
            return "judge", body, pico
        return None, guarded, pico
    return None, guarded, 0


def schema_problem(response_format: Any, text: str) -> str | None:
    """Why ``text`` does not satisfy ``response_format`` (None: it does, or nothing asked)."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind not in ("json_schema", "json_object"):
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return "the answer is not JSON"
    if kind == "json_object":
        return None if isinstance(value, dict) else "the answer is not a JSON object"
    schema = (response_format.get("json_schema") or {}).get("schema")
    if not isinstance(schema, dict):
        return None
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        return f"schema: {exc.message}"
    except jsonschema.SchemaError:
        return None  # the client's schema is broken: nothing to hold the answer to
    return None


async def judge(
    rt: Runtime, parent: RequestContext, cfg: JudgeValidator, request: JSON, answer: str
) -> tuple[float | None, int]:
    """The judge alias's 0…1 score of ``answer`` (None if unreadable) and what it cost."""
    from pilothouse.gateway.pipeline import estimated_usage

    question = "\n".join(
        str(m.get("content")) for m in request.get("messages") or () if m.get("role") == "user"
    )
    body = {
        "model": cfg.alias,
        "messages": [
            {"role": "system", "content": JUDGE_PROMPT},
            {"role": "user", "content": f"Request:\n{question}\n\nAnswer:\n{answer}"},
        ],
        "max_tokens": 8,
        "temperature": 0,
    }
    ctx = RequestContext(request_id=parent.request_id + ":judge", endpoint="chat")
    ctx.alias, ctx.deadline = cfg.alias, parent.deadline
    try:
        result = await rt.router.chat(ctx, body)
    except UpstreamError:
        return None, 0
    usage = result.usage
    text = _text(result.body)
    if usage.estimated and not (usage.input_tokens or usage.output_tokens):
        usage = estimated_usage(body, text) if text else Usage(estimate_input(body), 0, 0)
    pico = rt.prices.cost_pico(ctx.upstream_model, usage)
    match = _NUMBER.search(text)
    if match is None:
        return None, pico
    value = float(match.group())
    return (min(value / 10, 1.0) if value > 1 else value), pico


def _text(body: JSON) -> str:
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return ""
    return content if isinstance(content, str) else ""


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(
        a.input_tokens + b.input_tokens,
        a.output_tokens + b.output_tokens,
        a.cached_input_tokens + b.cached_input_tokens,
        estimated=a.estimated or b.estimated,
    )


def _reason(steps: list[dict[str, Any]]) -> str:
    parts = []
    for step in steps:
        failed = step.get("failed")
        parts.append(f"{step['alias']}: {failed} failed" if failed else f"{step['alias']}: served")
    return "; ".join(parts)
