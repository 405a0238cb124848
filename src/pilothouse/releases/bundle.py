"""A prompt bundle: the unit of release, validated, canonicalised and content-addressed.

The canonical content (every field, sorted keys, defaults filled in) is what
the SHA-256 covers, so two pushes of the same meaning are the same version.
Templates compile in Jinja2's sandbox at push time: a syntax error or an
undeclared variable is a 400 naming the field, before anything is stored.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from pilothouse.errors import InvalidRequestError
from pilothouse.releases import retrieval
from pilothouse.releases.render import declared_names

FIELDS = (
    "name",
    "description",
    "model",
    "params",
    "messages",
    "variables",
    "tools",
    "response_format",
    "evals",
    "card",
    "guards",
    "retrieval",
)
VAR_TYPES = ("string", "integer", "number", "boolean")
VAR_FIELDS = ("type", "required", "default", "max_length", "description")
ROLES = ("system", "user", "assistant", "developer")
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


def _bad(message: str, field: str) -> InvalidRequestError:
    return InvalidRequestError(f"invalid prompt bundle: `{field}` {message}", param=field)


def _variables(raw: Any) -> dict[str, dict[str, Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _bad("must map variable names to {type, required, default, max_length}", "variables")
    out: dict[str, dict[str, Any]] = {}
    for name, spec in raw.items():
        field = f"variables.{name}"
        if not isinstance(name, str) or not re.match(r"^[A-Za-z_]\w*$", name):
            raise _bad("is not a valid variable name", field)
        spec = spec or {}
        if not isinstance(spec, dict):
            raise _bad("must be an object", field)
        unknown = sorted(set(spec) - set(VAR_FIELDS))
        if unknown:
            raise _bad(f"has unknown key {unknown[0]!r}", f"{field}.{unknown[0]}")
        kind = spec.get("type", "string")
        if kind not in VAR_TYPES:
            raise _bad(f"type must be one of {VAR_TYPES}", f"{field}.type")
        max_length = spec.get("max_length")
        if max_length is not None and (
            isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1
        ):
            raise _bad("must be a positive integer", f"{field}.max_length")
        required = spec.get("required", False)
        if not isinstance(required, bool):
            raise _bad("must be true or false", f"{field}.required")
        out[name] = {
            "type": kind,
            "required": required,
            "default": spec.get("default"),
            "max_length": max_length,
            "description": spec.get("description"),
        }
    return out


def _messages(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise _bad("must be a non-empty list of {role, content}", "messages")
    out = []
    for i, message in enumerate(raw):
        field = f"messages[{i}]"
        if not isinstance(message, dict) or set(message) - {"role", "content", "name"}:
            raise _bad("must be an object with role and content", field)
        if message.get("role") not in ROLES:
            raise _bad(f"role must be one of {ROLES}", f"{field}.role")
        if not isinstance(message.get("content"), str):
            raise _bad("content must be a string template", f"{field}.content")
        out.append({k: message[k] for k in sorted(message)})
    return out


def _typed(raw: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = raw.get(name)
    if value is not None and not isinstance(value, kind):
        raise _bad(f"must be {what}", name)
    return value


def normalize(raw: Any) -> dict[str, Any]:
    """Validate a bundle (the file's fields as JSON) into its canonical dict."""
    if not isinstance(raw, dict):
        raise InvalidRequestError("a prompt bundle must be a JSON/YAML object")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise _bad("is not a bundle field", unknown[0])
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise _bad("is required: lowercase letters, digits, '.', '_' or '-'", "name")
    model = raw.get("model")
    if not isinstance(model, str) or not model or model.startswith("prompt:"):
        raise _bad("is required: a gateway model alias", "model")
    evals = raw.get("evals") or []
    if not isinstance(evals, list) or not all(isinstance(e, str) and e for e in evals):
        raise _bad("must be a list of suite paths", "evals")
    tools = raw.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise _bad("must be a list of OpenAI tool definitions", "tools")
    bundle = {
        "name": name,
        "description": _typed(raw, "description", str, "a string") or "",
        "model": model,
        "params": _typed(raw, "params", dict, "an object") or {},
        "messages": _messages(raw.get("messages")),
        "variables": _variables(raw.get("variables")),
        "tools": tools,
        "response_format": _typed(raw, "response_format", dict, "an object or null"),
        "evals": evals,
        "card": _typed(raw, "card", dict, "an object") or {},
        "guards": _typed(raw, "guards", dict, "an object"),
    }
    if "messages" in bundle["params"] or "model" in bundle["params"]:
        raise _bad("may not set messages or model", "params")
    # Only present when set: bundles pushed before retrieval existed keep their hashes.
    provided: set[str] = set()
    if raw.get("retrieval") is not None:
        bundle["retrieval"] = retrieval.normalize(raw["retrieval"])
        if retrieval.CONTEXT in bundle["variables"]:
            raise _bad(
                "is filled by the gateway from `retrieval`; do not declare it",
                f"variables.{retrieval.CONTEXT}",
            )
        provided.add(retrieval.CONTEXT)
        for used in declared_names(bundle["retrieval"]["query"], "retrieval.query"):
            if used not in bundle["variables"]:
                raise _bad(f"uses undeclared variable {used!r}", "retrieval.query")
    for i, message in enumerate(bundle["messages"]):
        for used in declared_names(message["content"], f"messages[{i}].content"):
            if used not in bundle["variables"] and used not in provided:
                raise _bad(f"uses undeclared variable {used!r}", f"messages[{i}].content")
    return bundle


def canonical(bundle: dict[str, Any]) -> bytes:
    return orjson.dumps(bundle, option=orjson.OPT_SORT_KEYS)


def content_hash(bundle: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(bundle)).hexdigest()
