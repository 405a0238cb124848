"""OpenAI chat-completions ⇄ Anthropic Messages, for complete (non-streamed) bodies.

Requests (OpenAI → Anthropic):

- ``system``/``developer`` messages, wherever they appear, are joined (blank
  line between) into the top-level ``system``; Anthropic has no system turns.
- ``user``/``assistant`` content becomes blocks: text, images (``data:`` URLs
  → base64 sources, http(s) URLs → url sources); assistant ``tool_calls``
  become ``tool_use`` blocks; ``tool`` messages become ``tool_result`` blocks in
  a user turn. Consecutive turns with the same role are merged, because
  Anthropic expects user and assistant to alternate.
- ``response_format`` has no Anthropic equivalent here: ``json_object`` and
  ``json_schema`` are honoured best effort by a system instruction (the model
  usually complies; nothing enforces it).
- ``presence_penalty``, ``frequency_penalty``, ``logit_bias``, ``seed`` and
  ``logprobs`` have no Anthropic counterpart and are dropped, as is any other
  key not named here (Anthropic rejects unknown fields). ``temperature`` is
  passed unchanged: Anthropic accepts 0-1 and answers a larger value with its
  own 400, which is clearer than silently clamping it.

Usage (Anthropic → gateway): Anthropic's ``input_tokens`` excludes prompt-cache
traffic, so the gateway's ``input_tokens`` is ``input_tokens +
cache_creation_input_tokens + cache_read_input_tokens`` (every prompt token is
counted once) and ``cached_input_tokens`` is ``cache_read_input_tokens``.
Cache writes are counted as ordinary input; Anthropic bills them at a
premium (1.25x), which the gateway's input/cached price pair cannot express.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson

from pilothouse.errors import InvalidRequestError, ProviderError
from pilothouse.providers.base import JSON, Usage

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

JSON_OBJECT_INSTRUCTION = (
    "Respond with a single valid JSON object and nothing else: "
    "no prose before or after it and no code fences."
)

_DATA_URL = re.compile(r"data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)


def to_anthropic(request: JSON, model: str, default_max_tokens: int) -> JSON:
    """Build the Anthropic Messages body for an OpenAI chat request."""
    if request.get("n") not in (None, 1):
        raise InvalidRequestError("Anthropic models return one choice (n=1)", param="n")
    system, turns = _conversation(request.get("messages"))
    instruction = _format_instruction(request.get("response_format"))
    if instruction:
        system.append(instruction)
    body: JSON = {
        "model": model,
        "max_tokens": _max_tokens(request, default_max_tokens),
        "messages": turns,
    }
    if system:
        body["system"] = "\n\n".join(system)
    for key in ("temperature", "top_p"):
        if request.get(key) is not None:
            body[key] = request[key]
    stop = request.get("stop")
    if stop:
        stop = [stop] if isinstance(stop, str) else stop
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise InvalidRequestError("`stop` must be a string or a list of strings", param="stop")
        body["stop_sequences"] = stop
    if request.get("tools"):
        body["tools"] = [_tool(t, i) for i, t in enumerate(request["tools"])]
        choice = _tool_choice(request.get("tool_choice"), request.get("parallel_tool_calls"))
        if choice is not None:
            body["tool_choice"] = choice
    if isinstance(request.get("user"), str):
        body["metadata"] = {"user_id": request["user"]}
    return body


def _max_tokens(request: JSON, default: int) -> int:
    value = request.get("max_completion_tokens") or request.get("max_tokens") or default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequestError("`max_tokens` must be a positive integer", param="max_tokens")
    return value


def _conversation(messages: Any) -> tuple[list[str], list[JSON]]:
    """Split out system text and turn the rest into alternating Anthropic turns."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("`messages` must be a non-empty list", param="messages")
    system: list[str] = []
    turns: list[JSON] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequestError(f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = message.get("role")
        if role in ("system", "developer"):
            text = _plain_text(message.get("content"), i)
            if text:
                system.append(text)
            continue
        if role == "user":
            role, blocks = "user", _blocks(message.get("content"), i)
        elif role == "assistant":
            role, blocks = "assistant", _assistant_blocks(message, i)
        elif role == "tool":
            role, blocks = "user", [_tool_result(message, i)]
        else:
            raise InvalidRequestError(
                f"messages[{i}].role {role!r} is not supported", param=f"messages[{i}].role"
            )
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise InvalidRequestError(
            "`messages` needs at least one user or assistant message", param="messages"
        )
    return system, turns


def _plain_text(content: Any, i: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "\n".join(b["text"] for b in _blocks(content, i) if b["type"] == "text")


def _blocks(content: Any, i: int) -> list[JSON]:
    """OpenAI content (string or parts) → Anthropic blocks; empty text is dropped."""
    if content is None or isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequestError(
            f"messages[{i}].content must be a string or a list", param=f"messages[{i}].content"
        )
    blocks: list[JSON] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal"):
            text = part.get("text") or part.get("refusal")
            block: JSON | None = {"type": "text", "text": text} if text else None
        elif kind == "image_url":
            block = _image(part.get("image_url"), i)
        else:
            raise InvalidRequestError(
                f"messages[{i}]: content part {kind!r} is not supported for Anthropic models",
                param=f"messages[{i}].content",
            )
        if block is not None:
            if "cache_control" in part:
                block["cache_control"] = part["cache_control"]
            blocks.append(block)
    return blocks


def _image(spec: Any, i: int) -> JSON:
    url = spec.get("url") if isinstance(spec, dict) else spec
    if isinstance(url, str):
        match = _DATA_URL.fullmatch(url)
        if match:
            source = {"type": "base64", "media_type": match["media"], "data": match["data"]}
            return {"type": "image", "source": source}
        if url.startswith(("https://", "http://")):
            return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequestError(
        f"messages[{i}]: images must be base64 data: URLs or http(s) URLs",
        param=f"messages[{i}].content",
    )


def _assistant_blocks(message: JSON, i: int) -> list[JSON]:
    blocks = _blocks(message.get("content"), i)
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not call.get("id") or not function.get("name"):
            raise InvalidRequestError(
                f"messages[{i}].tool_calls entries need id and function.name",
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
        blocks.append(
            {"type": "tool_use", "id": call["id"], "name": function["name"], "input": arguments}
        )
    return blocks


def _tool_result(message: JSON, i: int) -> JSON:
    tool_call_id = message.get("tool_call_id")
    if not isinstance(tool_call_id, str) or not tool_call_id:
        raise InvalidRequestError(
            f"messages[{i}] (role tool) needs tool_call_id", param=f"messages[{i}].tool_call_id"
        )
    block: JSON = {"type": "tool_result", "tool_use_id": tool_call_id}
    content = message.get("content")
    if isinstance(content, list):
        content = _blocks(content, i)
    if content:
        block["content"] = content
    return block


def _tool(tool: Any, i: int) -> JSON:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or tool.get("type") != "function" or not function.get("name"):
        raise InvalidRequestError(
            f"tools[{i}] must be a function tool with a name", param=f"tools[{i}]"
        )
    out: JSON = {
        "name": function["name"],
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _tool_choice(choice: Any, parallel: Any) -> JSON | None:
    if choice is None:
        out: JSON | None = {"type": "auto"} if parallel is False else None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "none":
        return {"type": "none"}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        out = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise InvalidRequestError(
            "`tool_choice` must be auto, none, required or a named function", param="tool_choice"
        )
    if out is not None and parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


def _format_instruction(fmt: Any) -> str | None:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_object":
        return JSON_OBJECT_INSTRUCTION
    if kind == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            shape = orjson.dumps(schema).decode()
            return f"{JSON_OBJECT_INSTRUCTION} It must conform to this JSON Schema: {shape}"
        return JSON_OBJECT_INSTRUCTION
    return None


# -- responses ------------------------------------------------------------------------


def usage_from_anthropic(usage: Any) -> Usage:
    """Anthropic usage → canonical usage; see the module docstring for the counting rule."""
    if not isinstance(usage, dict):
        return Usage(estimated=True)
    try:
        fresh = int(usage.get("input_tokens") or 0)
        written = int(usage.get("cache_creation_input_tokens") or 0)
        read = int(usage.get("cache_read_input_tokens") or 0)
        output = int(usage.get("output_tokens") or 0)
    except (TypeError, ValueError):
        return Usage(estimated=True)
    return Usage(fresh + written + read, output, read)


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def from_anthropic(message: JSON, model: str) -> tuple[JSON, Usage]:
    """An Anthropic ``message`` → an OpenAI ``chat.completion`` body and its usage."""
    content = message.get("content")
    if not isinstance(content, list):
        raise ProviderError("upstream response has no `content` list")
    text: list[str] = []
    calls: list[JSON] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            text.append(str(block.get("text") or ""))
        elif block.get("type") == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": block.get("name"), "arguments": arguments}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
    reply: JSON = {"role": "assistant", "content": "".join(text) or (None if calls else "")}
    if calls:
        reply["tool_calls"] = calls
    reply["refusal"] = None
    usage = usage_from_anthropic(message.get("usage"))
    body = {
        "id": message.get("id") or f"msg_{time.time_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model") or model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": finish_reason(message.get("stop_reason")),
            }
        ],
        "usage": usage.to_openai(),
    }
    return body, usage
