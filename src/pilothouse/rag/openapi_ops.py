"""OpenAPI operations of ``/v1/rag/{collection}/...`` (registered in gateway/openapi_ops.py)."""

from __future__ import annotations

from pilothouse.gateway.openapi import Operation, content, path_param

_STR = {"type": "string"}
_NULLABLE_STR = {"type": ["string", "null"]}
_ERRORS = (400, 401, 403, 404, 429, 502, 503)
_COLLECTION = path_param("collection", "a collection from the `rag:` config")
_DOC = path_param("doc_id", "the document id")
# The header name is rag.principal.header; this is its default.
_PRINCIPAL = {
    "name": "x-pilothouse-principal",
    "in": "header",
    "required": False,
    "description": "A JWT (HS256 by default, signed with rag.principal.secret) for the end user "
    "the key acts for: claims `sub` and `exp` required (exp at most rag.principal.max_age_s "
    "ahead), `groups` a list of strings. The key's groups are the ceiling, the token narrows "
    "them (an admin key reads with the token's groups; a key without groups needs "
    "`metadata.delegate_groups: true`, else 403 `principal_not_delegated`). A forged, expired or "
    "malformed token is 401 `invalid_principal` (the token is never echoed); the header on a "
    "gateway without rag.principal.secret is 400 `principal_header_disabled`.",
    "schema": {"type": "string"},
}
_PRINCIPAL_ERRORS = {
    400: "Invalid request, or `principal_header_disabled`: the principal header was sent to a "
    "gateway without rag.principal.secret",
    401: "Missing or invalid key, or `invalid_principal`: the principal token is forged, "
    "expired, too long-lived or malformed",
    403: "The key lacks the scope or model, or `principal_not_delegated`",
}

_DOCUMENT_IN = {
    "type": "object",
    "required": ["id", "text"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "text": _STR,
        "title": _NULLABLE_STR,
        "source": _NULLABLE_STR,
        "acl": {"type": "array", "items": _STR},
        "metadata": {"type": "object"},
    },
}
_HIT = {
    "type": "object",
    "required": ["document_id", "chunk_id", "score", "text", "title", "source", "metadata"],
    "properties": {
        "document_id": _STR,
        "chunk_id": _STR,
        "score": {"type": "number"},
        "text": _STR,
        "title": _NULLABLE_STR,
        "source": _NULLABLE_STR,
        "metadata": {"type": "object"},
    },
}

OPERATIONS: list[Operation] = [
    Operation(
        "POST",
        "/v1/rag/{collection}/documents",
        "Index documents (created, updated or unchanged by content hash)",
        "rag",
        "key",
        body={
            "type": "object",
            "required": ["documents"],
            "properties": {"documents": {"type": "array", "minItems": 1, "items": _DOCUMENT_IN}},
        },
        params=[_COLLECTION],
        ok={200: content({"type": "object", "required": ["data"]})},
        errors=_ERRORS,
    ),
    Operation(
        "GET",
        "/v1/rag/{collection}/documents/{doc_id}",
        "One indexed document (if the key's groups may read it)",
        "rag",
        "key",
        params=[_COLLECTION, _DOC, _PRINCIPAL],
        ok={200: content({"type": "object", "required": ["id", "chunks"]})},
        errors=_ERRORS,
        error_text=_PRINCIPAL_ERRORS,
    ),
    Operation(
        "DELETE",
        "/v1/rag/{collection}/documents/{doc_id}",
        "Delete a document: its chunks, vectors and keyword entries",
        "rag",
        "key",
        params=[_COLLECTION, _DOC, _PRINCIPAL],
        ok={
            200: content(
                {
                    "type": "object",
                    "required": ["id", "deleted", "cached_answers_deleted"],
                    "properties": {
                        "id": {"type": "string"},
                        "deleted": {"type": "boolean"},
                        "cached_answers_deleted": {
                            "type": "integer",
                            "description": "Cached answers citing the document, deleted with it.",
                        },
                    },
                }
            )
        },
        errors=_ERRORS,
        error_text=_PRINCIPAL_ERRORS,
    ),
    Operation(
        "POST",
        "/v1/rag/{collection}/search",
        "Permission-aware dense, keyword or hybrid search",
        "rag",
        "key",
        body={
            "type": "object",
            "required": ["query"],
            "properties": {
                "query": {"type": "string", "minLength": 1},
                "k": {"type": "integer", "minimum": 1, "maximum": 1000},
                "mode": {"enum": ["dense", "keyword", "hybrid"]},
                "filter": {
                    "type": "object",
                    "description": "metadata key -> value or list of values (keys ANDed, "
                    "values ORed), applied inside the index query",
                    "additionalProperties": {
                        "anyOf": [
                            {"type": ["string", "number", "boolean"]},
                            {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 100,
                                "items": {"type": ["string", "number", "boolean"]},
                            },
                        ]
                    },
                },
            },
        },
        params=[_COLLECTION, _PRINCIPAL],
        ok={
            200: content(
                {
                    "type": "object",
                    "required": ["data"],
                    "properties": {"data": {"type": "array", "items": _HIT}},
                }
            )
        },
        errors=_ERRORS,
        error_text=_PRINCIPAL_ERRORS,
    ),
]
