"""Anthropic Messages requests in, OpenAI chat-completions inside, Anthropic out.

Lets the official ``anthropic`` SDK point ``base_url`` at the gateway: a
``/v1/messages`` body is translated to the gateway's canonical OpenAI shape
(so auth, limits, budgets, cache, routing to *any* provider, usage and traces
are the ones chat completions use), and the answer is translated back —
complete messages by :func:`to_message`, streams event by event by
:class:`EventEncoder`.

Anthropic's ``input_tokens`` excludes prompt-cache reads, so outgoing usage is
``input_tokens = prompt - cached`` and ``cache_read_input_tokens = cached``.
"""

from __future__ import annotations

from typing import Any

import orjson

from pilothouse.errors import InvalidRequestError
from pilothouse.providers.base import JSON, Usage

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# Anthropic's error ``type`` for each status the gateway answers with.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def _bad(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def to_chat(body: JSON, *, counting: bool = False) -> JSON:
    """An Anthropic Messages body → the gateway's OpenAI chat body (400 naming the field).

    ``counting``: a ``count_tokens`` body, which has no ``max_tokens``.
    """
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "`model` must be a non-empty string")
    max_tokens = body.get("max_tokens", 1 if counting else None)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _bad("max_tokens", "`max_tokens` is required and must be a positive integer")
    messages: list[JSON] = []
    system = body.get("system")
    if system is not None:
        messages.append({"role": "system", "content": _system_text(system)})
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise _bad("messages", "`messages` must be a non-empty array")
    for i, message in enumerate(raw_messages):
        messages.extend(_message(message, i))
    chat: JSON = {"model": model, "max_tokens": max_tokens, "messages": messages}
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            chat[key] = body[key]
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise _bad("stop_sequences", "`stop_sequences` must be an array of strings")
        chat["stop"] = stop
    if body.get("tools") is not None:
        chat["tools"] = _tools(body["tools"])
    choice = body.get("tool_choice")
    if choice is not None:
        chat.update(_tool_choice(choice))
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        chat["user"] = metadata["user_id"]
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("stream", "`stream` must be a boolean")
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # Anthropic streams always end with usage
    return chat


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list) and all(
        isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        for b in system
    ):
        return "\n\n".join(b["text"] for b in system)
    raise _bad("system", "`system` must be a string or an array of text blocks")


def _message(message: Any, i: int) -> list[JSON]:
    where = f"messages[{i}]"
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise _bad(f"{where}.role", f"`{where}.role` must be user or assistant")
    role, content = message["role"], message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
        raise _bad(f"{where}.content", f"`{where}.content` must be a string or an array of blocks")
    parts: list[JSON] = []
    calls: list[JSON] = []
    results: list[JSON] = []
    for j, block in enumerate(content):
        kind = block.get("type")
        here = f"{where}.content[{j}]"
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text") or "")})
        elif kind == "image" and role == "user":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block, here)}})
        elif kind == "tool_use" and role == "assistant":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": block.get("name"), "arguments": arguments}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
        elif kind == "tool_result" and role == "user":
            results.append(_tool_result(block, here))
        elif kind in ("thinking", "redacted_thinking"):
            continue  # the model's own reasoning; not replayed to other providers
        else:
            raise _bad(here, f"`{here}`: content block {kind!r} is not supported here")
    out: list[JSON] = list(results)  # tool results answer the previous assistant turn first
    if role == "assistant":
        text = "".join(p["text"] for p in parts)
        reply: JSON = {"role": "assistant", "content": text or None}
        if calls:
            reply["tool_calls"] = calls
        if text or calls:
            out.append(reply)
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


def _image_url(block: JSON, here: str) -> str:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64":
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    if isinstance(source, dict) and source.get("type") == "url":
        return str(source.get("url"))
    raise _bad(here, f"`{here}`: image source must be base64 or url")


def _tool_result(block: JSON, here: str) -> JSON:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(here, f"`{here}`: tool_result needs tool_use_id")
    content = block.get("content")
    if isinstance(content, list):
        content = "".join(
            str(b.get("text") or "")
            for b in content
            if isinstance(b, dict) and b.get("type") == "text"
        )
    text = content if isinstance(content, str) else ""
    if block.get("is_error"):
        text = f"[tool error] {text}"
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def _tools(tools: Any) -> list[JSON]:
    if not isinstance(tools, list):
        raise _bad("tools", "`tools` must be an array")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise _bad(f"tools[{i}]", f"`tools[{i}]` must be a tool with a name")
        function: JSON = {
            "name": tool["name"],
            "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
        }
        if tool.get("description"):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> JSON:
    kind = choice.get("type") if isinstance(choice, dict) else None
    mapped: Any
    if kind == "auto":
        mapped = "auto"
    elif kind == "any":
        mapped = "required"
    elif kind == "none":
        mapped = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        mapped = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise _bad("tool_choice", "`tool_choice.type` must be auto, any, tool or none")
    out: JSON = {"tool_choice": mapped}
    if choice.get("disable_parallel_tool_use"):
        out["parallel_tool_calls"] = False
    return out


# -- answers --------------------------------------------------------------------------


def anthropic_usage(usage: Usage) -> JSON:
    return {
        "input_tokens": max(0, usage.input_tokens - usage.cached_input_tokens),
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
        "cache_creation_input_tokens": 0,
    }


def to_message(completion: JSON, usage: Usage, message_id: str) -> JSON:
    """An OpenAI ``chat.completion`` → an Anthropic ``message``."""
    choice = (completion.get("choices") or [{}])[0]
    reply = choice.get("message") or {}
    content: list[JSON] = []
    if isinstance(reply.get("content"), str) and reply["content"]:
        content.append({"type": "text", "text": reply["content"]})
    for call in reply.get("tool_calls") or []:
        function = call.get("function") or {}
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = {"_raw": function.get("arguments")}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": arguments,
            }
        )
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": completion.get("model"),
        "content": content,
        "stop_reason": STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": anthropic_usage(usage),
    }


def sse(name: str, data: JSON) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class EventEncoder:
    """OpenAI stream chunks → Anthropic stream events, one chunk at a time."""

    def __init__(self, message_id: str, model: str) -> None:
        self.message_id, self.model = message_id, model
        self.started = False
        self.block: int = -1
        self.block_kind: str | None = None
        self.tool_blocks: dict[int, int] = {}  # OpenAI tool-call index → block index
        self.stop_reason = "end_turn"
        self.usage = Usage(estimated=True)

    def chunk(self, chunk: JSON) -> list[bytes]:
        out = self._start(chunk)
        if chunk.get("usage") is not None:
            self.usage = Usage.from_openai(chunk["usage"]) or self.usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self.block_kind != "text":
                    out += self._open({"type": "text", "text": ""}, "text")
                out.append(self._delta({"type": "text_delta", "text": text}))
            for call in delta.get("tool_calls") or []:
                out += self._tool_call(call)
            if choice.get("finish_reason"):
                self.stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
        return out

    def done(self) -> list[bytes]:
        out = self._start({})
        out += self._close()
        delta = {"type": "message_delta", "delta": {"stop_reason": self.stop_reason,
                                                     "stop_sequence": None},
                 "usage": anthropic_usage(self.usage)}  # fmt: skip
        return [*out, sse("message_delta", delta), sse("message_stop", {"type": "message_stop"})]

    def error(self, status: int, message: str) -> bytes:
        body = {"type": "error", "error": {"type": error_type(status), "message": message}}
        return sse("error", body)

    def _start(self, chunk: JSON) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        message: JSON = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model") or self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [sse("message_start", {"type": "message_start", "message": message})]

    def _open(self, block: JSON, kind: str) -> list[bytes]:
        out = self._close()
        self.block += 1
        self.block_kind = kind
        start = {"type": "content_block_start", "index": self.block, "content_block": block}
        return [*out, sse("content_block_start", start)]

    def _close(self) -> list[bytes]:
        if self.block_kind is None:
            return []
        self.block_kind = None
        return [sse("content_block_stop", {"type": "content_block_stop", "index": self.block})]

    def _delta(self, delta: JSON, index: int | None = None) -> bytes:
        at = self.block if index is None else index
        body = {"type": "content_block_delta", "index": at, "delta": delta}
        return sse("content_block_delta", body)

    def _tool_call(self, call: JSON) -> list[bytes]:
        out: list[bytes] = []
        index = int(call.get("index") or 0)
        function = call.get("function") or {}
        if index not in self.tool_blocks:
            block: JSON = {"type": "tool_use", "id": call.get("id"), "name": function.get("name"),
                     "input": {}}  # fmt: skip
            out += self._open(block, "tool_use")
            self.tool_blocks[index] = self.block
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            # Fragments of an earlier call (rare interleaving) still name that call's block.
            delta = {"type": "input_json_delta", "partial_json": arguments}
            out.append(self._delta(delta, self.tool_blocks[index]))
        return out
