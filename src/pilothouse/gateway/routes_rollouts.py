"""Admin API for rollouts: start, list, status, promote, roll back (operator role)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.errors import ConflictError, InvalidRequestError, NotFoundError
from pilothouse.gateway.routes_admin import admin, principal_of
from pilothouse.gateway.routes_openai import json_response
from pilothouse.gateway.routes_prompts import _body, _reason
from pilothouse.gateway.runtime import Runtime
from pilothouse.releases.promote import promote as promote_label
from pilothouse.rollout import report
from pilothouse.rollout.model import STATES, Rollout
from pilothouse.rollout.store import parse_request


async def _check_targets(rt: Runtime, values: dict[str, Any]) -> None:
    if values["kind"] == "prompt":
        name, label = values["prompt_name"], values["label"]
        baseline = await rt.prompts.label_version(name, label)
        if baseline is None:
            raise InvalidRequestError(f"prompt {name!r} has no label {label!r}", param="label")
        try:
            await rt.prompts.version(name, values["candidate_version"])
        except NotFoundError as exc:
            raise InvalidRequestError(exc.message, param="candidate") from None
        if baseline == values["candidate_version"]:
            raise InvalidRequestError(
                f"{label!r} already points at version {baseline}", param="candidate"
            )
        values["baseline_version"] = baseline
        return
    for field in ("alias", "candidate_alias"):
        if values[field] not in rt.router.routes:
            raise InvalidRequestError(
                f"`{field}` {values[field]!r} is not a model alias in the config", param=field
            )


async def start(rt: Runtime, request: Request) -> Response:
    body = await _body(rt, request)
    reason = _reason(body)
    values = parse_request(body, rt.settings.rollouts.defaults)
    await _check_targets(rt, values)
    ro = await rt.rollouts.store.create(values, actor=principal_of(request).name, reason=reason)
    await rt.rollouts.changed()
    return json_response(ro.public(), status=201)


async def list_rollouts(rt: Runtime, request: Request) -> Response:
    state = request.query_params.get("state")
    if state is not None and state not in STATES:
        raise InvalidRequestError(f"`state` must be one of {', '.join(STATES)}", param="state")
    rows = await rt.rollouts.store.list_rollouts(state)
    return json_response({"data": [ro.public() for ro in rows]})


async def status_of(rt: Runtime, ro: Rollout) -> dict[str, Any]:
    await rt.rollouts.flush()
    totals = await rt.rollouts.totals(ro.id)
    marks = await rt.rollouts.store.marks(ro.id)
    await rt.ledger.flush()
    fb = await report.feedback_by_arm(rt.engine, ro.id)
    return report.build(ro, totals, marks, fb)


async def show(rt: Runtime, request: Request) -> Response:
    ro = await rt.rollouts.store.get(request.path_params["id"])
    return json_response(await status_of(rt, ro))


def _not_running(ro: Rollout) -> ConflictError:
    return ConflictError(f"rollout {ro.id} is {ro.state}, not running", code="rollout_not_running")


async def promote(rt: Runtime, request: Request) -> Response:
    ro = await rt.rollouts.store.get(request.path_params["id"])
    body = await _body(rt, request)
    reason = _reason(body)
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise InvalidRequestError("`force` must be true or false", param="force")
    if ro.state != "running":
        raise _not_running(ro)
    actor = principal_of(request).name
    status = await status_of(rt, ro)
    evidence = {
        "rollout_id": ro.id,
        "mode": ro.mode,
        "requests": {arm: status["arms"][arm]["requests"] for arm in ("baseline", "candidate")},
        "guards": {g["metric"]: g["state"] for g in status["guards"]},
        "srm_p_value": status["srm"].get("p_value"),
    }
    moved: dict[str, Any] | None = None
    if ro.kind == "prompt":
        assert ro.prompt_name and ro.label and ro.candidate_version is not None
        moved = await promote_label(
            rt.prompts,
            rt.settings.releases,
            ro.prompt_name,
            ro.label,
            ro.candidate_version,
            actor=actor,
            reason=reason or f"rollout {ro.id}",
            force=force,
            extra_evidence=[evidence],
        )
        await rt.label_moved(ro.prompt_name, ro.label)
    if not await rt.rollouts.store.end(
        ro.id, "promoted", actor=actor, reason=reason, audit_details={"evidence": evidence}
    ):
        raise _not_running(await rt.rollouts.store.get(ro.id))
    await rt.rollouts.changed()
    out = (await rt.rollouts.store.get(ro.id)).public()
    return json_response({**out, "label_move": moved})


async def rollback(rt: Runtime, request: Request) -> Response:
    ro = await rt.rollouts.store.get(request.path_params["id"])
    body = await _body(rt, request)
    reason = _reason(body)
    if not await rt.rollouts.store.end(
        ro.id, "rolled_back", actor=principal_of(request).name, reason=reason or "manual rollback"
    ):
        raise _not_running(await rt.rollouts.store.get(ro.id))
    await rt.rollouts.changed()
    return json_response((await rt.rollouts.store.get(ro.id)).public())


def routes() -> list[Route]:
    base = "/admin/rollouts"
    return [
        Route(base, admin(start, "rollouts.write"), methods=["POST"]),
        Route(base, admin(list_rollouts, "rollouts.read"), methods=["GET"]),
        Route(base + "/{id}", admin(show, "rollouts.read"), methods=["GET"]),
        Route(base + "/{id}/promote", admin(promote, "rollouts.write"), methods=["POST"]),
        Route(base + "/{id}/rollback", admin(rollback, "rollouts.write"), methods=["POST"]),
    ]
