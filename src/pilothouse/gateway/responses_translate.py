"""OpenAI Responses API ⇄ the gateway's chat-completions shape.

A Responses request becomes a chat body (``instructions`` → a system message,
``input`` items → messages, function tools and ``text.format`` translated), so
every provider serves it through the one pipeline; the chat answer becomes a
``response`` object with ``message`` and ``function_call`` output items, and a
chat stream becomes the Responses event sequence (:class:`EventEncoder`).

Conversation state for ``previous_response_id`` is the list of chat messages
*without* the instructions (as OpenAI does, instructions are not carried over
to the next response).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from pilothouse.errors import InvalidRequestError
from pilothouse.providers.base import JSON, Usage

ECHOED = ("instructions", "metadata", "tool_choice", "temperature", "top_p", "max_output_tokens")


def _bad(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def input_messages(value: Any) -> list[JSON]:
    """``input`` (a string or a list of items) → chat messages."""
    if isinstance(value, str):
        if not value:
            raise _bad("input", "`input` must not be empty")
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise _bad("input", "`input` must be a string or a non-empty array of items")
    out: list[JSON] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise _bad(where, f"`{where}` must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            out.append(_message(item, where))
        elif kind == "function_call":
            call = _function_call(item, where)
            if out and out[-1]["role"] == "assistant" and "tool_calls" in out[-1]:
                out[-1]["tool_calls"].append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output")
            if not isinstance(call_id, str) or not call_id:
                raise _bad(f"{where}.call_id", f"`{where}.call_id` must be a non-empty string")
            text = output if isinstance(output, str) else orjson.dumps(output).decode()
            out.append({"role": "tool", "tool_call_id": call_id, "content": text})
        else:
            raise _bad(f"{where}.type", f"`{where}.type` {kind!r} is not supported")
    return out


def _message(item: JSON, where: str) -> JSON:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise _bad(f"{where}.role", f"`{where}.role` must be user, assistant, system or developer")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise _bad(f"{where}.content", f"`{where}.content` must be a string or an array")
    parts: list[JSON] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": str(part.get("text") or "")})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image: JSON = {"url": part["image_url"]}
            if part.get("detail"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "refusal":
            parts.append({"type": "text", "text": str(part.get("refusal") or "")})
        else:
            raise _bad(
                f"{where}.content[{j}]", f"`{where}.content[{j}]`: {kind!r} is not supported"
            )
    if role != "user":  # assistant/system turns are text in chat completions
        return {"role": role, "content": "".join(p.get("text", "") for p in parts)}
    return {"role": role, "content": parts}


def _function_call(item: JSON, where: str) -> JSON:
    name, call_id = item.get("name"), item.get("call_id")
    if not isinstance(name, str) or not isinstance(call_id, str):
        raise _bad(where, f"`{where}`: function_call needs name and call_id")
    arguments = item.get("arguments")
    text = arguments if isinstance(arguments, str) else orjson.dumps(arguments or {}).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


def to_chat(body: JSON, history: list[JSON]) -> tuple[JSON, list[JSON]]:
    """The chat body for this request, and the conversation to store (without instructions)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "`model` must be a non-empty string")
    conversation = [*history, *input_messages(body.get("input"))]
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise _bad("instructions", "`instructions` must be a string")
    messages = (
        [{"role": "system", "content": instructions}] if instructions else []
    ) + conversation
    chat: JSON = {"model": model, "messages": messages}
    for key in ("temperature", "top_p", "user", "parallel_tool_calls"):
        if body.get(key) is not None:
            chat[key] = body[key]
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if fmt is not None:
        chat["response_format"] = _format(fmt)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("stream", "`stream` must be a boolean")
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat, conversation


def _tools(tools: Any) -> list[JSON]:
    if not isinstance(tools, list):
        raise _bad("tools", "`tools` must be an array")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise _bad(
                f"tools[{i}]", f"`tools[{i}]`: only function tools are supported, got {kind!r}"
            )
        if not isinstance(tool.get("name"), str):
            raise _bad(f"tools[{i}].name", f"`tools[{i}].name` must be a string")
        function: JSON = {"name": tool["name"]}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _bad("tool_choice", "`tool_choice` must be auto, none, required or a function")


def _format(fmt: Any) -> JSON:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema" and isinstance(fmt.get("schema"), dict):
        schema: JSON = {"name": fmt.get("name") or "response", "schema": fmt["schema"]}
        if fmt.get("strict") is not None:
            schema["strict"] = fmt["strict"]
        return {"type": "json_schema", "json_schema": schema}
    raise _bad("text.format", "`text.format.type` must be text, json_object or json_schema")


# -- answers --------------------------------------------------------------------------


def usage_object(usage: Usage) -> JSON:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def message_item(item_id: str, text: str, status: str = "completed") -> JSON:
    content = [{"type": "output_text", "text": text, "annotations": []}]
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": content,
    }


def call_item(item_id: str, call: JSON, status: str = "completed") -> JSON:
    function = call.get("function") or {}
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call.get("id") or item_id,
        "name": function.get("name"),
        "arguments": function.get("arguments") or "",
        "status": status,
    }


def response_object(
    response_id: str,
    body: JSON,
    *,
    model: str,
    output: list[JSON],
    usage: Usage | None,
    status: str,
    finish_reason: str | None = None,
    created_at: int | None = None,
) -> JSON:
    incomplete = {"reason": "max_output_tokens"} if finish_reason == "length" else None
    out: JSON = {
        "id": response_id,
        "object": "response",
        "created_at": created_at or int(time.time()),
        "status": "incomplete" if incomplete and status == "completed" else status,
        "model": model,
        "output": output,
        "usage": usage_object(usage) if usage is not None else None,
        "error": None,
        "incomplete_details": incomplete,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "store": body.get("store", True),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tools": body.get("tools") or [],
        "truncation": "disabled",
    }
    for key in ECHOED:
        out[key] = body.get(key, "auto" if key == "tool_choice" else None)
    return out


def output_items(response_id: str, completion: JSON) -> tuple[list[JSON], str | None]:
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    items: list[JSON] = []
    base = response_id.removeprefix("resp_")
    if isinstance(message.get("content"), str) and message["content"]:
        items.append(message_item(f"msg_{base}", message["content"]))
    for n, call in enumerate(message.get("tool_calls") or []):
        items.append(call_item(f"fc_{base}_{n}", call))
    return items, choice.get("finish_reason")


def assistant_turn(items: list[JSON]) -> list[JSON]:
    """The output items as chat messages, to extend the stored conversation."""
    text = "".join(
        part.get("text", "")
        for item in items
        if item["type"] == "message"
        for part in item["content"]
    )
    calls = [
        {
            "id": item["call_id"],
            "type": "function",
            "function": {"name": item["name"], "arguments": item["arguments"]},
        }
        for item in items
        if item["type"] == "function_call"
    ]
    message: JSON = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return [message] if text or calls else []


class EventEncoder:
    """Chat stream chunks → Responses API events (``event:`` + ``data:`` with a sequence number)."""

    def __init__(self, response_id: str, body: JSON, model: str) -> None:
        self.response_id, self.body, self.model = response_id, body, model
        self.base = response_id.removeprefix("resp_")
        self.created_at = int(time.time())
        self.sequence = 0
        self.items: list[JSON] = []
        self.text_index: int | None = None
        self.calls: dict[int, int] = {}  # chat tool-call index → output index
        self.usage: Usage | None = None
        self.finish_reason: str | None = None

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _snapshot(self, status: str) -> JSON:
        return response_object(
            self.response_id,
            self.body,
            model=self.model,
            output=self.items,
            usage=self.usage,
            status=status,
            finish_reason=self.finish_reason,
            created_at=self.created_at,
        )

    def start(self) -> list[bytes]:
        snapshot = self._snapshot("in_progress")
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def chunk(self, chunk: JSON) -> list[bytes]:
        out: list[bytes] = []
        if chunk.get("usage") is not None:
            self.usage = Usage.from_openai(chunk["usage"]) or self.usage
        if chunk.get("model"):
            self.model = str(chunk["model"])
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                out += self._text(text)
            for call in delta.get("tool_calls") or []:
                out += self._call(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def _text(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        if self.text_index is None:
            self.text_index = len(self.items)
            item = message_item(f"msg_{self.base}", "", status="in_progress")
            item["content"] = []
            self.items.append(item)
            out.append(
                self._event("response.output_item.added", output_index=self.text_index, item=item)
            )
            part = {"type": "output_text", "text": "", "annotations": []}
            out.append(
                self._event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=self.text_index,
                    content_index=0,
                    part=part,
                )
            )
            item["content"].append(part)
        item = self.items[self.text_index]
        item["content"][0]["text"] += text
        out.append(
            self._event(
                "response.output_text.delta",
                item_id=item["id"],
                output_index=self.text_index,
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return out

    def _call(self, call: JSON) -> list[bytes]:
        out: list[bytes] = []
        index = int(call.get("index") or 0)
        function = call.get("function") or {}
        if index not in self.calls:
            self.calls[index] = len(self.items)
            item = call_item(
                f"fc_{self.base}_{index}",
                {**call, "function": {"name": function.get("name"), "arguments": ""}},
                status="in_progress",
            )
            self.items.append(item)
            out.append(
                self._event("response.output_item.added", output_index=self.calls[index], item=item)
            )
        at = self.calls[index]
        fragment = function.get("arguments")
        if isinstance(fragment, str) and fragment:
            self.items[at]["arguments"] += fragment
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=self.items[at]["id"],
                    output_index=at,
                    delta=fragment,
                )
            )
        return out

    def done(self) -> list[bytes]:
        out: list[bytes] = []
        for at, item in enumerate(self.items):
            item["status"] = "completed"
            if item["type"] == "message":
                part = item["content"][0]
                out.append(
                    self._event(
                        "response.output_text.done",
                        item_id=item["id"],
                        output_index=at,
                        content_index=0,
                        text=part["text"],
                        logprobs=[],
                    )
                )
                out.append(
                    self._event(
                        "response.content_part.done",
                        item_id=item["id"],
                        output_index=at,
                        content_index=0,
                        part=part,
                    )
                )
            else:
                out.append(
                    self._event(
                        "response.function_call_arguments.done",
                        item_id=item["id"],
                        output_index=at,
                        arguments=item["arguments"],
                    )
                )
            out.append(self._event("response.output_item.done", output_index=at, item=item))
        final = self._snapshot("completed")
        kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        out.append(self._event(kind, response=final))
        return out

    def failed(self, code: str, message: str) -> list[bytes]:
        snapshot = self._snapshot("failed")
        snapshot["error"] = {"code": code, "message": message}
        return [self._event("response.failed", response=snapshot)]

    def final(self) -> JSON:
        return self._snapshot("completed")
