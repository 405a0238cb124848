"""OpenAPI operations of the web console (HTML pages; see ``gateway/openapi_ops.py``)."""

from __future__ import annotations

from typing import Any

from pilothouse.gateway.openapi import Operation, content, errors, path_param, query

HTML = "text/html"
_STR = {"type": "string"}
_PAGE = {200: content(_STR, HTML), 303: {}}
_PAGE_ERRORS = errors(400, 403, 404)


def _page(path: str, summary: str, *params: dict[str, Any]) -> Operation:
    return Operation(
        "GET",
        path,
        summary,
        "console",
        "console",
        params=params,
        ok=_PAGE,
        errors=_PAGE_ERRORS,
        error_media=HTML,
    )


def _form(path: str, summary: str, fields: tuple[str, ...]) -> Operation:
    return Operation(
        "POST",
        path,
        summary,
        "console",
        "console",
        params=[path_param("name", "prompt name"), path_param("version", "number or label")],
        body={"type": "object", "properties": {f: _STR for f in ("csrf_token", *fields)}},
        body_media="application/x-www-form-urlencoded",
        ok=_PAGE,
        errors=errors(400, 403, 404, 409, 413),
        error_media=HTML,
    )


def _post(
    path: str, summary: str, param: dict[str, Any] | None, fields: tuple[str, ...]
) -> Operation:
    return Operation(
        "POST",
        path,
        summary + " (form, CSRF token)",
        "console",
        "console",
        params=[param] if param else [],
        body={"type": "object", "properties": {f: _STR for f in ("csrf_token", *fields)}},
        body_media="application/x-www-form-urlencoded",
        ok={**_PAGE, 201: content(_STR, HTML)},
        errors=errors(400, 403, 404, 409, 413),
        error_media=HTML,
    )


def _key_and_rollout_pages() -> list[Operation]:
    key = path_param("key_id", "key_…")
    ro = path_param("rollout_id", "ro_…")
    req = path_param("request_id", "req_…")
    limits = ("models", "budget_usd", "budget_period", "rpm", "tpm")
    return [
        _page("/console/keys", "Keys and budgets", query("revoked", "1: include revoked keys")),
        _post("/console/keys", "Create a key; its secret is shown once", None,
              ("name", "role", *limits)),
        _post("/console/keys/{key_id}/update", "Change a key's models, budget, limits", key,
              limits),
        _post("/console/keys/{key_id}/rotate", "Rotate a key; the new secret is shown once", key,
              ("grace_s",)),
        _post("/console/keys/{key_id}/revoke", "Revoke a key", key, ()),
        _post("/console/requests/{request_id}/feedback", "Rate a request (feedback)", req,
              ("thumbs", "score", "comment")),
        _post("/console/requests/{request_id}/review", "Send a request to the review queue", req,
              ("note",)),
        _page("/console/sessions/{session_id}", "A session's requests as a conversation",
              path_param("session_id", "the request metadata's session")),
        Operation(
            "GET", "/console/export", "The request log's filtered set as CSV or JSONL",
            "console", "console",
            params=[query("format", "csv or jsonl"), query("session", "and the log's filters")],
            ok={200: {**content(_STR, "text/csv"), **content(_STR, "application/x-ndjson")},
                303: {}},
            errors=_PAGE_ERRORS, error_media=HTML,
        ),
        _page("/console/rollouts", "Running and past rollouts"),
        _page("/console/rollouts/{rollout_id}", "A rollout's arms, guards and SRM check", ro),
        _post("/console/rollouts/{rollout_id}/promote", "Promote a rollout", ro, ("reason",)),
        _post("/console/rollouts/{rollout_id}/rollback", "Roll back a rollout", ro, ("reason",)),
    ]  # fmt: skip


def _prompt_pages() -> list[Operation]:
    name = path_param("name", "prompt name")
    version = path_param("version", "version number or label")
    base = "/console/prompts/{name}"
    return [
        _page("/console/prompts", "Prompt list", query("q", "name contains")),
        _page(base, "A prompt: labels, versions, compare form", name),
        _page(
            base + "/diff",
            "Side-by-side diff of two versions",
            name,
            query("a", "version or label"),
            query("b", "version or label"),
        ),
        _page(
            base + "/labels/{label}",
            "A label's move history",
            name,
            path_param("label", "label"),
        ),
        _page(base + "/versions/{version}", "A version's release card", name, version),
        _form(
            base + "/versions/{version}/approve",
            "Approve a version for a label",
            ("label", "reason"),
        ),
        _form(
            base + "/versions/{version}/promote",
            "Move a label under its policy",
            ("label", "reason"),
        ),
    ]


OPERATIONS: list[Operation] = [
    # signed-in pages redirect (303) to the login form otherwise
    _page("/console", "Console home"),
    _page("/console/", "Console home"),
    Operation(
        "GET",
        "/console/login",
        "Sign-in form",
        "console",
        "none",
        ok=_PAGE,
        errors=_PAGE_ERRORS,
        error_media=HTML,
    ),
    Operation(
        "POST",
        "/console/login",
        "Sign in with the admin key (form, CSRF token)",
        "console",
        "none",
        body={"type": "object", "properties": {"key": _STR, "csrf": _STR, "next": _STR}},
        body_media="application/x-www-form-urlencoded",
        ok=_PAGE,
        errors=errors(400, 403, 413, 429),
        error_media=HTML,
    ),
    Operation(
        "POST",
        "/console/logout",
        "Sign out (form, CSRF token)",
        "console",
        "console",
        body={"type": "object", "properties": {"csrf": _STR}},
        body_media="application/x-www-form-urlencoded",
        body_required=False,
        ok=_PAGE,
        errors=errors(400, 403, 413),
        error_media=HTML,
    ),
    Operation(
        "GET",
        "/console/static/{name}",
        "Console assets",
        "console",
        "none",
        params=[path_param("name", "asset file name")],
        ok={200: {**content(_STR, "text/css"), **content(_STR, "application/javascript")}},
        errors=(404,),
        error_media="text/plain",
    ),
    _page(
        "/console/requests",
        "Request log: full-text search, filters, sorting, time range",
        query("q", "words in stored prompts and answers (not for viewers)"),
        query("range", "1h, 24h, 7d, 30d or custom (with since/until)"),
        query("sort", "time, latency or cost"),
        query("order", "desc or asc"),
    ),
    _page(
        "/console/dashboards",
        "Latency/TTFT percentiles per alias, error and cache-hit rates, cache savings, budgets",
        query("range", "1h, 24h, 7d, 30d or custom (with since/until)"),
    ),
    _page("/console/requests/{request_id}", "One request", path_param("request_id", "req_…")),
    _page("/console/find", "Find by request or trace id", query("q", "an id")),
    _page("/console/traces/{trace_id}", "One trace", path_param("trace_id", "32 hex")),
    _page("/console/usage", "Usage charts"),
    _page("/console/costs", "Cost charts"),
    *_prompt_pages(),
    *_key_and_rollout_pages(),
    _page("/console/evals", "Eval runs", query("suite", "suite name")),
    _page(
        "/console/evals/compare",
        "Compare two eval runs (paired tests)",
        query("a", "baseline run id"),
        query("b", "current run id"),
    ),
    _page("/console/evals/review", "Human review queue", query("run", "run id")),
    Operation(
        "POST",
        "/console/evals/review/{item_id}",
        "Label a review item (form, CSRF token)",
        "console",
        "console",
        params=[path_param("item_id", "rv_…")],
        body={"type": "object", "properties": {f: _STR for f in ("csrf_token", "label", "note")}},
        body_media="application/x-www-form-urlencoded",
        ok=_PAGE,
        errors=errors(400, 403, 413),
        error_media=HTML,
    ),
    _page(
        "/console/evals/{run_id}",
        "One eval run: metrics, slices, gates, cases",
        path_param("run_id", "run_…"),
        query("failed", "1: failing cases only"),
    ),
    Operation(
        "GET",
        "/console/{rest}",
        "Unknown console page (404 page; paths the router cannot match get a JSON 404)",
        "console",
        "console",
        params=[path_param("rest", "any path")],
        ok=_PAGE,
        errors=(400, 404),
        error_media=(HTML, "application/json"),
    ),
]
