"""OpenAPI operations of the rollouts admin API (registered in openapi_ops.SOURCES)."""

from __future__ import annotations

from pilothouse.gateway.openapi import Operation, content, path_param, query

_STR = {"type": "string"}
_NUM = {"type": "number"}
_OBJ = {"type": "object"}
_ID = path_param("id", "rollout id (ro_…)")
_ERRORS = (400, 401, 403)
_GUARD = {
    "type": "object",
    "required": ["metric"],
    "properties": {
        "metric": _STR,
        "max_increase": _NUM,
        "max_increase_ratio": _NUM,
        "max_drop": _NUM,
    },
}
_START = {
    "type": "object",
    "properties": {
        "prompt": _STR,
        "label": _STR,
        "candidate": {"type": "integer"},
        "alias": _STR,
        "candidate_alias": _STR,
        "mode": {"type": "string", "enum": ["canary", "ab", "shadow"]},
        "percent": _NUM,
        "split": _NUM,
        "steps": {"type": "array", "items": _NUM},
        "step_after": {"type": "object", "properties": {"requests": {"type": "integer"}}},
        "sticky": {"type": "string", "enum": ["user", "session", "key", "none"]},
        "bill_shadow": {"type": "boolean"},
        "guards": {"type": "array", "items": _GUARD},
        "min_samples": {"type": "integer"},
        "alpha": _NUM,
        "on_candidate_error": {"type": "string", "enum": ["baseline", "fail"]},
        "reason": _STR,
    },
}
_ROLLOUT = {
    "type": "object",
    "required": ["id", "state", "mode", "target"],
    "properties": {
        "id": _STR,
        "state": {"type": "string", "enum": ["running", "promoted", "rolled_back", "stopped"]},
        "mode": _STR,
        "target": _STR,
        "share": _NUM,
    },
}
_STATUS = {
    "type": "object",
    "required": ["id", "state", "mode", "target", "arms", "guards", "srm", "recommendation"],
    "properties": {
        "id": _STR,
        "state": _STR,
        "mode": _STR,
        "target": _STR,
        "share": _NUM,
        "arms": _OBJ,
        "guards": {"type": "array", "items": _OBJ},
        "srm": _OBJ,
        "recommendation": _OBJ,
    },
}
_END = {"type": "object", "properties": {"reason": _STR, "force": {"type": "boolean"}}}

OPERATIONS: list[Operation] = [
    Operation(
        "POST",
        "/admin/rollouts",
        "Start a canary, A/B or shadow rollout of a prompt version or a model alias",
        "rollouts",
        "admin",
        body=_START,
        ok={201: content(_ROLLOUT)},
        errors=(*_ERRORS, 409, 413),
    ),
    Operation(
        "GET",
        "/admin/rollouts",
        "Rollouts, newest first",
        "rollouts",
        "admin",
        params=[
            query(
                "state",
                "only rollouts in this state",
                {"type": "string", "enum": ["running", "promoted", "rolled_back", "stopped"]},
            )
        ],
        ok={
            200: content(
                {"type": "object", "properties": {"data": {"type": "array", "items": _ROLLOUT}}}
            )
        },
        errors=_ERRORS,
    ),
    Operation(
        "GET",
        "/admin/rollouts/{id}",
        "A rollout's arms (figures with intervals), guard verdicts, SRM check, recommendation",
        "rollouts",
        "admin",
        params=[_ID],
        ok={200: content(_STATUS)},
        errors=(*_ERRORS, 404),
    ),
    Operation(
        "POST",
        "/admin/rollouts/{id}/promote",
        "Promote the candidate (prompt: moves the label through its release policy)",
        "rollouts",
        "admin",
        params=[_ID],
        body=_END,
        body_required=False,
        ok={200: content(_ROLLOUT)},
        errors=(*_ERRORS, 404, 409, 413),
    ),
    Operation(
        "POST",
        "/admin/rollouts/{id}/rollback",
        "Roll back: all traffic to the baseline on every replica, label unchanged",
        "rollouts",
        "admin",
        params=[_ID],
        body=_END,
        body_required=False,
        ok={200: content(_ROLLOUT)},
        errors=(*_ERRORS, 404, 409, 413),
    ),
]
