"""OpenAPI operations of the console's playground, replay and users pages."""

from __future__ import annotations

from pilothouse.gateway.openapi import Operation, content, errors, path_param, query

HTML = "text/html"
_STR = {"type": "string"}
_FIELDS = (
    "csrf_token", "target", "system", "message", "max_tokens", "temperature", "variables",
    "replay_of",
)  # fmt: skip


def _page(path: str, summary: str, *params: dict[str, object]) -> Operation:
    return Operation(
        "GET", path, summary, "console", "console", params=params,
        ok={200: content(_STR, HTML), 303: {}}, errors=errors(400, 403, 404), error_media=HTML,
    )  # fmt: skip


OPERATIONS: list[Operation] = [
    _page("/console/playground", "Playground: send a request as the signed-in principal",
          query("target", "alias or prompt:NAME@LABEL to preselect")),
    Operation(
        "POST", "/console/playground/run",
        "Run a playground or replay request; the answer streams as server-sent events "
        "(delta, error, done) (form, CSRF token)",
        "console", "console",
        body={"type": "object", "properties": {f: _STR for f in _FIELDS}},
        body_media="application/x-www-form-urlencoded",
        ok={200: content(_STR, "text/event-stream"), 303: {}},
        errors=errors(400, 403, 404, 409, 413, 429, 502, 503),
    ),
    _page("/console/requests/{request_id}/replay", "Replay a request; answers side by side",
          path_param("request_id", "req_…")),
    _page("/console/users", "Requests, cost and feedback per user",
          query("since", "span or UTC time"), query("until", "span or UTC time")),
]  # fmt: skip
