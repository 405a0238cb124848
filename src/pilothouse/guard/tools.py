"""Tool policy: an allowlist for declared tools, schema checks for the calls a model makes.

Declared tools outside the allowlist refuse the request (403) before any
upstream call; a tool call in an answer is blocked when it names a tool that
is not allowed or not declared, when its arguments are not JSON or fail the
declared JSON schema, or — with ``no_url_after_untrusted`` — when it carries
a URL after untrusted content entered the conversation (the exfiltration
path of indirect injection).
"""

from __future__ import annotations

import json
import re
from typing import Any

from pilothouse.errors import GuardBlockedError, ToolNotAllowedError
from pilothouse.guard.config import ToolPolicy

_URL = re.compile(r"\b(?:https?|ftp|wss?)://|\bwww\.[a-z0-9-]+\.", re.IGNORECASE)


def declared_tools(body: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """Tool name → JSON schema of its parameters (None when it declares none)."""
    out: dict[str, dict[str, Any] | None] = {}
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            fn = tool.get("function") if tool.get("type", "function") == "function" else None
            if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                params = fn.get("parameters")
                out[fn["name"]] = params if isinstance(params, dict) else None
    for fn in body.get("functions") or []:
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            params = fn.get("parameters")
            out[fn["name"]] = params if isinstance(params, dict) else None
    return out


def check_declared(policy: ToolPolicy, declared: dict[str, Any]) -> None:
    if policy.allow is None:
        return
    refused = sorted(name for name in declared if name not in policy.allow)
    if refused:
        raise ToolNotAllowedError(
            f"tools not allowed by the guard policy: {', '.join(refused)}; "
            f"allowed: {', '.join(policy.allow) or 'none'}",
            param="tools",
        )


def check_call(
    policy: ToolPolicy,
    declared: dict[str, dict[str, Any] | None],
    name: str,
    arguments: str,
    untrusted_seen: bool,
) -> None:
    """Raise GuardBlockedError when one tool call breaks the policy (never echoing arguments)."""
    if policy.allow is not None and name not in policy.allow:
        raise GuardBlockedError(
            f"blocked by guard 'tools': the model called a tool that is not allowed ({name})"
        )
    if policy.validate_arguments:
        if name not in declared:
            raise GuardBlockedError(
                f"blocked by guard 'tools': the model called an undeclared tool ({name})"
            )
        try:
            args = json.loads(arguments or "{}")
        except ValueError:
            raise GuardBlockedError(
                f"blocked by guard 'tools': arguments of {name} are not valid JSON"
            ) from None
        schema = declared.get(name)
        if schema is not None:
            import jsonschema

            try:
                jsonschema.validate(args, schema)
            except jsonschema.ValidationError as exc:
                where = "/".join(str(p) for p in exc.absolute_path) or "<root>"
                raise GuardBlockedError(
                    f"blocked by guard 'tools': arguments of {name} fail its schema at {where} "
                    f"({exc.validator})"
                ) from None
            except jsonschema.SchemaError:
                raise GuardBlockedError(
                    f"blocked by guard 'tools': the declared schema of {name} is invalid"
                ) from None
    if policy.no_url_after_untrusted and untrusted_seen and _URL.search(arguments or ""):
        raise GuardBlockedError(
            f"blocked by guard 'tools': {name} was called with a URL after untrusted content "
            "(tool results or documents) entered the conversation"
        )
