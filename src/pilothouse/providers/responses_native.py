"""An upstream's own ``/responses`` endpoint ↔ the gateway's canonical chat shape.

``/v1/responses`` is translated to chat at the ingress (guards, cache, budgets,
usage and traces all see chat), so a provider that has the Responses API is one
more edge, as for legacy completions: the (guarded) canonical chat request
becomes a Responses body again — with ``extras``, the fields only the Responses
API knows (``reasoning``, ``include``…), passed as the client sent them — and the
upstream's answer or event stream comes back as chat. The upstream is asked not
to store anything (``store: false``): the gateway keeps the conversation itself,
so ``previous_response_id`` works the same whichever target served a turn.
"""

from __future__ import annotations

import time
from typing import Any

from pilothouse.errors import ProviderError
from pilothouse.providers.base import JSON, Usage

# Responses-only request fields with no chat equivalent: sent upstream as given.
NATIVE_ONLY = (
    "reasoning", "include", "truncation", "service_tier", "top_logprobs",
    "prompt_cache_key", "safety_identifier", "max_tool_calls",
)  # fmt: skip
SAMPLING = ("temperature", "top_p", "user", "parallel_tool_calls")


def native_responses(provider: Any) -> bool:
    """Whether ``provider`` sends ``/v1/responses`` requests to an endpoint of its own."""
    return bool(getattr(provider, "native_responses", False))


def _content(message: JSON) -> Any:
    content = message.get("content")
    if not isinstance(content, list):
        return content if isinstance(content, str) else ""
    parts: list[JSON] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            parts.append({"type": "input_text", "text": str(part.get("text") or "")})
        elif part.get("type") == "image_url":
            image = part.get("image_url") or {}
            item: JSON = {"type": "input_image", "image_url": image.get("url")}
            if image.get("detail"):
                item["detail"] = image["detail"]
            parts.append(item)
    return parts


def input_items(messages: list[JSON]) -> list[JSON]:
    """Chat messages → Responses ``input`` items (messages, function calls and outputs)."""
    items: list[JSON] = []
    for message in messages:
        role = message.get("role")
        if role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.get("tool_call_id"),
                    "output": message.get("content") or "",
                }
            )
            continue
        content = _content(message)
        if content:
            items.append({"type": "message", "role": role, "content": content})
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            items.append(
                {
                    "type": "function_call",
                    "call_id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": function.get("arguments") or "",
                }
            )
    return items


def _tool(tool: JSON) -> JSON:
    function = tool.get("function") or {}
    return {"type": "function", **function}


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict):
        return {"type": "function", "name": (choice.get("function") or {}).get("name")}
    return choice


def _text_format(fmt: JSON) -> JSON:
    if fmt.get("type") != "json_schema":
        return {"type": fmt.get("type")}
    schema = fmt.get("json_schema") or {}
    return {"type": "json_schema", **schema}


def upstream_body(request: JSON, extras: JSON, model: str) -> JSON:
    """A native ``/responses`` body from the canonical chat request and the extras."""
    body: JSON = {"model": model, "input": input_items(request.get("messages") or [])}
    body.update({k: request[k] for k in SAMPLING if request.get(k) is not None})
    limit = request.get("max_completion_tokens") or request.get("max_tokens")
    if limit is not None:
        body["max_output_tokens"] = limit
    if request.get("tools"):
        body["tools"] = [_tool(t) for t in request["tools"]]
    if request.get("tool_choice") is not None:
        body["tool_choice"] = _tool_choice(request["tool_choice"])
    if isinstance(request.get("response_format"), dict):
        body["text"] = {"format": _text_format(request["response_format"])}
    body.update(extras)
    body["store"] = False
    return body


def usage_of(raw: Any) -> Usage:
    """A Responses ``usage`` object in the canonical shape (estimated when absent)."""
    if not isinstance(raw, dict):
        return Usage(estimated=True)
    details = raw.get("input_tokens_details") or {}
    try:
        cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
        return Usage(int(raw.get("input_tokens") or 0), int(raw.get("output_tokens") or 0), cached)
    except (TypeError, ValueError):
        return Usage(estimated=True)


def _finish(response: JSON, has_calls: bool) -> str:
    reason = (response.get("incomplete_details") or {}).get("reason")
    if response.get("status") == "incomplete":
        return "content_filter" if reason == "content_filter" else "length"
    return "tool_calls" if has_calls else "stop"


def _failure(response: JSON) -> ProviderError:
    error = response.get("error") or {}
    message = error.get("message") if isinstance(error, dict) else None
    return ProviderError(f"upstream response failed: {message or 'no reason given'}")


def to_chat(response: JSON) -> tuple[JSON, Usage]:
    """An upstream ``response`` object → a chat completion and its usage."""
    if response.get("status") == "failed":
        raise _failure(response)
    output = response.get("output")
    if not isinstance(output, list):
        raise ProviderError("upstream response has no `output`")
    text, calls = "", []
    for item in output:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") == "output_text":
                    text += str(part.get("text") or "")
        elif item.get("type") == "function_call":
            calls.append(
                {
                    "id": item.get("call_id"),
                    "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments")},
                }
            )
    message: JSON = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    finish = _finish(response, bool(calls))
    chat = {
        "id": str(response.get("id") or ""),
        "object": "chat.completion",
        "created": int(response.get("created_at") or time.time()),
        "model": response.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    return chat, usage_of(response.get("usage"))


class ChunkDecoder:
    """Responses stream events → chat chunks; ``done`` once the final event was seen."""

    def __init__(self, model: str) -> None:
        self.model, self.id, self.created = model, "", int(time.time())
        self.calls: dict[int, int] = {}  # output index → chat tool-call index
        self.done = False

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }

    def decode(self, event: JSON) -> list[JSON]:
        kind = event.get("type")
        response = event.get("response") if isinstance(event.get("response"), dict) else {}
        assert isinstance(response, dict)
        if kind == "response.created":
            self.id = str(response.get("id") or "")
            self.model = str(response.get("model") or self.model)
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "response.output_text.delta":
            return [self._chunk({"content": str(event.get("delta") or "")})]
        if kind == "response.output_item.added":
            item = event.get("item") or {}
            if item.get("type") != "function_call":
                return []
            index = self.calls.setdefault(int(event.get("output_index") or 0), len(self.calls))
            call = {"index": index, "id": item.get("call_id"), "type": "function"}
            call["function"] = {"name": item.get("name"), "arguments": ""}
            return [self._chunk({"tool_calls": [call]})]
        if kind == "response.function_call_arguments.delta":
            index = self.calls.get(int(event.get("output_index") or 0), 0)
            call = {"index": index, "function": {"arguments": str(event.get("delta") or "")}}
            return [self._chunk({"tool_calls": [call]})]
        if kind in ("response.completed", "response.incomplete"):
            self.done = True
            usage = usage_of(response.get("usage"))
            tail = {"id": self.id, "object": "chat.completion.chunk", "created": self.created}
            tail |= {"model": self.model, "choices": [], "usage": usage.to_openai()}
            return [self._chunk({}, _finish(response, bool(self.calls))), tail]
        if kind == "response.failed":
            raise _failure(response)
        if kind == "error":
            raise ProviderError(f"upstream stream error: {event.get('message') or 'unknown'}")
        return []
