"""The registry of documented routes (see ``gateway/openapi.py``).

To document a new route: add one ``Operation`` below in its area (or put a list
named ``OPERATIONS`` in your own module and add its dotted name to ``SOURCES``).
Schemas are JSON Schema; keep them honest but open (``additionalProperties``
allowed) where the gateway passes fields through to the upstream.
``tests/unit/test_openapi.py`` fails until every route is documented, and
schemathesis (``tests/integration/test_openapi_contract.py``) checks the live
gateway against what is written here.
"""

from __future__ import annotations

import importlib
from typing import Any

from pilothouse.gateway.openapi import Operation, content, errors, path_param, query

# Modules with their own ``OPERATIONS`` list (one per area keeps this file small).
SOURCES: tuple[str, ...] = (
    "pilothouse.gateway.openapi_completions",
    "pilothouse.gateway.openapi_console",
    "pilothouse.gateway.openapi_keys",
    "pilothouse.gateway.openapi_moderations",
    "pilothouse.gateway.openapi_playground",
    "pilothouse.gateway.openapi_privacy",
    "pilothouse.gateway.openapi_releases",
    "pilothouse.gateway.openapi_rollouts",
    "pilothouse.gateway.openapi_routing",
    "pilothouse.gateway.openapi_teams",
    "pilothouse.rag.openapi_ops",
    "pilothouse.batches.openapi_ops",
    "pilothouse.console.openapi_ops",
)

_STR = {"type": "string"}
_INT = {"type": "integer"}
_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"]}
_OBJ = {"type": "object"}

COMPONENTS: dict[str, Any] = {
    # Replaced by an enum of the configured aliases in the served document.
    "ModelAlias": {"type": "string", "minLength": 1},
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type"],
                "properties": {
                    "message": _STR,
                    "type": _STR,
                    "param": _NULLABLE_STR,
                    "code": _NULLABLE_STR,
                },
            }
        },
    },
    "AnthropicError": {
        "type": "object",
        "required": ["type", "error"],
        "properties": {
            "type": {"const": "error"},
            "error": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": _STR, "message": _NULLABLE_STR},
            },
        },
    },
    "Message": {
        "type": "object",
        "required": ["role"],
        "properties": {
            "role": {"enum": ["system", "developer", "user", "assistant", "tool", "function"]},
            "content": {"type": ["string", "array", "null"]},
            "name": _STR,
        },
    },
    "Usage": {
        "type": "object",
        "properties": {"prompt_tokens": _INT, "completion_tokens": _INT, "total_tokens": _INT},
    },
    "ChatCompletion": {
        "type": "object",
        "required": ["id", "object", "choices"],
        "properties": {
            "id": _STR,
            "object": {"const": "chat.completion"},
            "created": _INT,
            "model": _STR,
            "choices": {"type": "array", "items": _OBJ},
            "usage": {"$ref": "#/components/schemas/Usage"},
        },
    },
    "Key": {
        "type": "object",
        "required": ["id", "name", "key_prefix", "scopes", "budget_period", "revoked"],
        "properties": {
            "id": _STR,
            "name": _STR,
            "key_prefix": _STR,
            "scopes": {"type": "array", "items": _STR},
            "models": {"type": ["array", "null"], "items": _STR},
            "rpm": _NULLABLE_INT,
            "tpm": _NULLABLE_INT,
            "model_limits": {"type": ["object", "null"]},
            "budget_usd": _NULLABLE_STR,
            "budget_period": {"enum": ["total", "day", "month"]},
            "metadata": _OBJ,
            "created_at": _NULLABLE_STR,
            "revoked": {"type": "boolean"},
            "role": _NULLABLE_STR,
            "expires_at": _NULLABLE_STR,
            "spend_usd": _STR,
            "budget_left_usd": _NULLABLE_STR,
            "last_used_at": _NULLABLE_STR,
            "team_id": _NULLABLE_STR,
            "user_id": _NULLABLE_STR,
        },
    },
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_LIMIT = {"type": "integer", "minimum": 1}
_CHAT_BODY = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"$ref": "#/components/schemas/ModelAlias"},
        "messages": {"type": "array", "minItems": 1, "items": ref("Message")},
        "stream": {"type": "boolean"},
        "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
        "max_tokens": _LIMIT,
        "max_completion_tokens": _LIMIT,
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "n": {"type": "integer", "minimum": 1, "maximum": 128},
        "tools": {"type": "array", "items": _OBJ},
        "response_format": _OBJ,
    },
}
_RESPONSES_BODY = {
    "type": "object",
    "required": ["model", "input"],
    "properties": {
        "model": {"$ref": "#/components/schemas/ModelAlias"},
        "input": {"type": ["string", "array"]},
        "instructions": _STR,
        "previous_response_id": _STR,
        "store": {"type": "boolean"},
        "stream": {"type": "boolean"},
        "max_output_tokens": _LIMIT,
    },
}
_RESPONSE = {
    "type": "object",
    "required": ["id", "object"],
    "properties": {"id": _STR, "object": {"const": "response"}, "output": {"type": "array"}},
}
_MESSAGES_BODY = {
    "type": "object",
    "required": ["model", "messages", "max_tokens"],
    "properties": {
        "model": {"$ref": "#/components/schemas/ModelAlias"},
        "max_tokens": _LIMIT,
        "system": {"type": ["string", "array"]},
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {
                    "role": {"enum": ["user", "assistant"]},
                    "content": {"type": ["string", "array"]},
                },
            },
        },
        "stream": {"type": "boolean"},
        "tools": {"type": "array", "items": _OBJ},
    },
}
_ANTHROPIC_MESSAGE = {
    "type": "object",
    "required": ["id", "type", "role", "content"],
    "properties": {
        "id": _STR,
        "type": {"const": "message"},
        "role": {"const": "assistant"},
        "content": {"type": "array"},
        "usage": _OBJ,
    },
}
_EMBED_BODY = {
    "type": "object",
    "required": ["model", "input"],
    "properties": {
        "model": {"$ref": "#/components/schemas/ModelAlias"},
        "input": {"oneOf": [_STR, {"type": "array", "minItems": 1, "items": _STR}]},
    },
}
_EMBEDDINGS = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {"object": {"const": "list"}, "data": {"type": "array"}, "usage": _OBJ},
}
_MODELS = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {
        "object": {"const": "list"},
        "data": {
            "type": "array",
            "items": {"type": "object", "required": ["id", "object"], "properties": {"id": _STR}},
        },
    },
}
_FEEDBACK_BODY = {
    "type": "object",
    "properties": {
        "request_id": _STR,
        "task_id": _STR,
        "success": {"type": "boolean"},
        "score": {"type": "number"},
        "comment": _STR,
        "metadata": _OBJ,
    },
}
_FEEDBACK = {
    "type": "object",
    "required": ["id", "object", "key_id"],
    "properties": {"id": _STR, "object": {"const": "feedback"}, "key_id": _STR},
}
_SPAN = {"since": "ISO time or a span like 7d", "until": "ISO time or a span like 1h"}
_TIME = [query(name, text) for name, text in _SPAN.items()]
# One server-sent event (schemathesis checks each): `data` is a JSON chunk or [DONE].
_SSE = content(
    {"type": "object", "required": ["data"], "properties": {"event": _STR, "data": _STR}},
    "text/event-stream",
)
OPERATIONS: list[Operation] = [
    # health and the contract itself
    Operation("GET", "/healthz", "Liveness", "health", "none", ok={200: content(_OBJ)}),
    Operation(
        "GET",
        "/readyz",
        "Readiness: store, Redis, draining",
        "health",
        "none",
        ok={200: content(_OBJ), 503: content(_OBJ)},
    ),
    Operation(
        "GET", "/openapi.json", "This document", "meta", ok={200: content(_OBJ)}, errors=(401,)
    ),
    # OpenAI-compatible
    *[
        Operation(
            "POST",
            prefix + "/chat/completions",
            "Chat completion (stream: true → server-sent events)",
            "openai",
            body=_CHAT_BODY,
            ok={200: {**content(ref("ChatCompletion")), **_SSE}},
            errors=errors(400, 401, 403, 404, 413, 429, 502, 503, 504),
        )
        for prefix in ("/v1", "")
    ],
    *[
        Operation(
            "POST",
            prefix + "/embeddings",
            "Embeddings",
            "openai",
            body=_EMBED_BODY,
            ok={200: content(_EMBEDDINGS)},
            errors=errors(400, 401, 403, 404, 413, 429, 502, 503, 504),
        )
        for prefix in ("/v1", "")
    ],
    *[
        Operation(
            "GET",
            p,
            "Model aliases this key may use",
            "openai",
            ok={200: content(_MODELS)},
            errors=(401, 403),
        )
        for p in ("/v1/models", "/models")
    ],
    # OpenAI Responses API (stored conversations owned by their key)
    Operation(
        "POST",
        "/v1/responses",
        "Create a response (stream: true → Responses events)",
        "openai",
        body=_RESPONSES_BODY,
        ok={200: {**content(_RESPONSE), **_SSE}},
        errors=errors(400, 401, 403, 404, 413, 429, 502, 503, 504),
    ),
    Operation(
        "GET",
        "/v1/responses/{id}",
        "Retrieve a stored response",
        "openai",
        params=[path_param("id", "resp_…")],
        ok={200: content(_RESPONSE)},
        errors=(400, 401, 403, 404),
    ),
    Operation(
        "DELETE",
        "/v1/responses/{id}",
        "Delete a stored response",
        "openai",
        params=[path_param("id", "resp_…")],
        ok={
            200: content(
                {
                    "type": "object",
                    "required": ["id", "object", "deleted"],
                    "properties": {"object": {"const": "response.deleted"}},
                }
            )
        },
        errors=(400, 401, 403, 404),
    ),
    # Anthropic-compatible (Messages API; errors in Anthropic's shape)
    Operation(
        "POST",
        "/v1/messages",
        "Anthropic Messages (stream: true → Anthropic events)",
        "anthropic",
        body=_MESSAGES_BODY,
        ok={200: {**content(_ANTHROPIC_MESSAGE), **_SSE}},
        errors=errors(400, 401, 403, 404, 413, 429, 502, 503, 504),
        error_schema="AnthropicError",
    ),
    Operation(
        "POST",
        "/v1/messages/count_tokens",
        "Estimated input tokens of a Messages request",
        "anthropic",
        body={**_MESSAGES_BODY, "required": ["model", "messages"]},
        ok={200: content({"type": "object", "required": ["input_tokens"]})},
        errors=errors(400, 401, 403, 404, 413),
        error_schema="AnthropicError",
    ),
    # feedback, telemetry in
    Operation(
        "POST",
        "/v1/feedback",
        "Record an outcome for a request or task",
        "feedback",
        body=_FEEDBACK_BODY,
        ok={201: content(_FEEDBACK)},
        errors=errors(400, 401, 403, 404, 413),
    ),
    Operation(
        "POST",
        "/v1/traces",
        "OTLP/HTTP trace receiver (protobuf or JSON)",
        "traces",
        body={"type": "object", "properties": {"resourceSpans": {"type": "array"}}},
        ok={200: {**content(_OBJ), **content(_STR, "application/x-protobuf")}},
        errors=errors(400, 401, 403, 413),
    ),
    Operation(
        "GET",
        "/metrics",
        "Prometheus metrics (admin key or metrics scope)",
        "telemetry",
        "metrics",
        ok={200: content(_STR, "text/plain")},
        errors=(401, 403),
    ),
    # admin (keys: gateway/openapi_keys.py)
    Operation(
        "GET",
        "/admin/usage",
        "Usage and cost totals",
        "admin",
        "admin",
        params=[
            query("key_id", "filter by key"),
            query("team_id", "filter by team"),
            query("user_id", "filter by user"),
            query("model", "filter by alias"),
            *_TIME,
            query(
                "group_by",
                "grouping",
                {"enum": ["key", "team", "user", "model", "provider", "upstream_model", "day"]},
            ),
        ],
        ok={200: content({"type": "object", "required": ["data", "total"]})},
        errors=(400, 401, 403),
    ),
    Operation(
        "POST",
        "/admin/reload",
        "Reload the config file",
        "admin",
        "admin",
        body_required=False,
        ok={200: content({"type": "object", "required": ["reloaded"]})},
        errors=(400, 401, 403),
    ),
    Operation(
        "GET",
        "/admin/traces",
        "List traces",
        "traces",
        "admin",
        params=[
            *[
                query(n, f"filter by {n}")
                for n in ("key_id", "model", "user", "feature", "team", "task_id", "provider")
            ],
            query("status", "ok, error or an HTTP status"),
            *_TIME,
            query("limit", "page size", {"type": "string", "pattern": "^[0-9]{1,4}$"}),
            query("cursor", "from the previous page's next_cursor"),
        ],
        ok={200: content({"type": "object", "required": ["data"]})},
        errors=(400, 401, 403),
    ),
    Operation(
        "GET",
        "/admin/traces/{ident}",
        "One request's reconstruction (request id or trace id)",
        "traces",
        "admin",
        params=[path_param("ident", "request id (req_…) or 32-hex trace id")],
        ok={200: content(_OBJ)},
        errors=(400, 401, 403, 404),
    ),
    Operation(
        "GET",
        "/admin/slo",
        "SLO status and firing alerts",
        "telemetry",
        "admin",
        ok={200: content({"type": "object", "required": ["data", "firing"]})},
        errors=(401, 403),
    ),
    Operation(
        "GET",
        "/admin/reports/costs",
        "Spend attribution",
        "costs",
        "admin",
        params=[query("by", "comma-separated dimensions, e.g. team,model"), *_TIME],
        ok={200: content(_OBJ)},
        errors=(400, 401, 403),
    ),
]


def all_operations() -> list[Operation]:
    ops = list(OPERATIONS)
    for name in SOURCES:
        ops += importlib.import_module(name).OPERATIONS
    return ops
