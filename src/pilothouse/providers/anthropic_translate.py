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

import time
from typing import Any

import orjson

from pilothouse.errors import InvalidRequestError, ProviderError
from pilothouse.providers import openai_messages as walk
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
    stop = walk.stop_sequences(request)
    if stop:
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
    return walk.conversation(
        messages, system=_plain_text, user=_blocks, assistant=_assistant_blocks, tool=_tool_result
    )


def _plain_text(content: Any, i: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "\n".join(b["text"] for b in _blocks(content, i) if b["type"] == "text")


def _blocks(content: Any, i: int) -> list[JSON]:
    """OpenAI content (string or parts) → Anthropic blocks; empty text is dropped."""
    return walk.content_blocks(
        content,
        i,
        provider="Anthropic",
        text=lambda text: {"type": "text", "text": text},
        image=_image,
        keep=("cache_control",),
    )


def _image(spec: Any, i: int) -> JSON:
    url = walk.image_url(spec)
    if isinstance(url, str):
        match = walk.DATA_URL.fullmatch(url)
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
    for call_id, name, arguments in walk.tool_calls(message, i):
        blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": arguments})
    return blocks


def _tool_result(message: JSON, i: int) -> JSON:
    block: JSON = {"type": "tool_result", "tool_use_id": walk.tool_call_id(message, i)}
    content = message.get("content")
    if isinstance(content, list):
        content = _blocks(content, i)
    if content:
        block["content"] = content
    return block


def _tool(tool: Any, i: int) -> JSON:
    function = walk.function_tool(tool, i)
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
    else:
        out = {"type": "tool", "name": walk.named_tool_choice(choice)}
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
