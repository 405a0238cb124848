"""OpenAPI operation of the in-gateway erasure."""

from __future__ import annotations

from pilothouse.gateway.openapi import Operation, content

_SUBJECT = {
    "type": "object",
    "description": "exactly one of user, key or request",
    "properties": {"user": {"type": "string"}, "key": {"type": "string"},
                   "request": {"type": "string"}},
    "additionalProperties": False,
}  # fmt: skip
_RECEIPT = {
    "type": "object",
    "required": ["subject", "found", "values_erased", "stores", "residue", "clean"],
    "properties": {
        "subject": {"type": "string"},
        "found": {"type": "boolean"},
        "values_erased": {"type": "integer"},
        "stores": {"type": "object"},
        "residue": {"type": "object"},
        "clean": {"type": "boolean"},
        "audit_seq": {"type": ["integer", "null"]},
    },
}

OPERATIONS: list[Operation] = [
    Operation(
        "POST",
        "/admin/privacy/erase",
        "Erase one subject's content everywhere, this gateway's memory included; receipt",
        "privacy",
        "admin",
        body=_SUBJECT,
        ok={200: content(_RECEIPT)},
        errors=(400, 401, 403, 404),
    )
]
