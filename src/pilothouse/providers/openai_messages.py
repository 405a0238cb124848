"""The walk over an OpenAI chat request shared by the translators to other providers' APIs.

Anthropic, Gemini and Bedrock all take the same OpenAI input apart the same way
(system text out, turns of one role merged, content parts, tool calls, tool
results) and differ only in the blocks they build; those builders are passed
in, so the validation and its error messages live here once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from pilothouse.errors import InvalidRequestError
from pilothouse.providers.base import JSON

DATA_URL = re.compile(r"data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)

Builder = Callable[[Any, int], Any]


def conversation(
    messages: Any,
    *,
    system: Callable[[Any, int], str],
    user: Callable[[Any, int], list[JSON]],
    assistant: Callable[[JSON, int], list[JSON]],
    tool: Callable[[JSON, int], JSON],
    assistant_role: str = "assistant",
    key: str = "content",
) -> tuple[list[str], list[JSON]]:
    """Split out system text and turn the rest into alternating user/assistant turns.

    ``system`` gets a system message's content, ``user`` a user message's
    content, ``assistant`` and ``tool`` the whole message; each turn is
    ``{"role": ..., key: blocks}`` and consecutive turns of one role are merged.
    """
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("`messages` must be a non-empty list", param="messages")
    texts: list[str] = []
    turns: list[JSON] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequestError(f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = message.get("role")
        if role in ("system", "developer"):
            text = system(message.get("content"), i)
            if text:
                texts.append(text)
            continue
        if role == "user":
            turn, blocks = "user", user(message.get("content"), i)
        elif role == "assistant":
            turn, blocks = assistant_role, assistant(message, i)
        elif role == "tool":
            turn, blocks = "user", [tool(message, i)]
        else:
            raise InvalidRequestError(
                f"messages[{i}].role {role!r} is not supported", param=f"messages[{i}].role"
            )
        if not blocks:
            continue
        if turns and turns[-1]["role"] == turn:
            turns[-1][key].extend(blocks)
        else:
            turns.append({"role": turn, key: blocks})
    if not turns:
        raise InvalidRequestError(
            "`messages` needs at least one user or assistant message", param="messages"
        )
    return texts, turns


def content_blocks(
    content: Any,
    i: int,
    *,
    provider: str,
    text: Callable[[Any], JSON],
    image: Callable[[Any, int], JSON],
    others: Mapping[str, Callable[[JSON, int], JSON]] | None = None,
    keep: tuple[str, ...] = (),
) -> list[JSON]:
    """OpenAI content (a string or parts) → provider blocks; empty text is dropped.

    ``others`` builds part types beyond text and image_url; ``keep`` names part
    keys copied onto the block (Anthropic's ``cache_control``).
    """
    if content is None or isinstance(content, str):
        return [text(content)] if content else []
    if not isinstance(content, list):
        raise InvalidRequestError(
            f"messages[{i}].content must be a string or a list", param=f"messages[{i}].content"
        )
    blocks: list[JSON] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal"):
            value = part.get("text") or part.get("refusal")
            block: JSON | None = text(value) if value else None
        elif kind == "image_url":
            block = image(part.get("image_url"), i)
        elif others is not None and isinstance(kind, str) and kind in others:
            block = others[kind](part, i)
        else:
            raise InvalidRequestError(
                f"messages[{i}]: content part {kind!r} is not supported for {provider} models",
                param=f"messages[{i}].content",
            )
        if block is not None:
            for name in keep:
                if name in part:
                    block[name] = part[name]
            blocks.append(block)
    return blocks


def image_url(spec: Any) -> Any:
    """The URL of an ``image_url`` part (an object with ``url``, or the bare value)."""
    return spec.get("url") if isinstance(spec, dict) else spec


def tool_calls(message: JSON, i: int, *, need_id: bool = True) -> list[tuple[Any, str, JSON]]:
    """An assistant message's tool calls as (id, function name, parsed arguments)."""
    calls: list[tuple[Any, str, JSON]] = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(function, dict)
            or (need_id and not call.get("id"))
            or not function.get("name")
        ):
            needs = "id and function.name" if need_id else "function.name"
            raise InvalidRequestError(
                f"messages[{i}].tool_calls entries need {needs}",
                param=f"messages[{i}].tool_calls",
            )
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = None
        if not isinstance(arguments, dict):
            raise InvalidRequestError(
                f"messages[{i}].tool_calls: arguments must be a JSON object string",
                param=f"messages[{i}].tool_calls",
            )
        calls.append((call.get("id"), function["name"], arguments))
    return calls


def tool_call_id(message: JSON, i: int) -> str:
    """The ``tool_call_id`` a tool message answers; required."""
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError(
            f"messages[{i}] (role tool) needs tool_call_id", param=f"messages[{i}].tool_call_id"
        )
    return call_id


def json_object(content: Any) -> JSON | None:
    """A tool result's text parsed as a JSON object, or None when it is not one."""
    try:
        parsed = orjson.loads(content) if isinstance(content, str) and content else None
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def function_tool(tool: Any, i: int) -> JSON:
    """The ``function`` of an OpenAI tool entry, which must be a named function tool."""
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or tool.get("type") != "function" or not function.get("name"):
        raise InvalidRequestError(
            f"tools[{i}] must be a function tool with a name", param=f"tools[{i}]"
        )
    return function


def named_tool_choice(choice: Any) -> str:
    """The function name of a ``{"function": {"name": ...}}`` tool_choice; else the 400."""
    if isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        name: str = choice["function"]["name"]
        return name
    raise InvalidRequestError(
        "`tool_choice` must be auto, none, required or a named function", param="tool_choice"
    )


def stop_sequences(request: JSON) -> list[str] | None:
    """``stop`` as a list of strings (None when unset or empty)."""
    stop = request.get("stop")
    if not stop:
        return None
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise InvalidRequestError("`stop` must be a string or a list of strings", param="stop")
    return stop
