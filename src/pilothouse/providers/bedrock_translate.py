"""OpenAI chat-completions ⇄ Amazon Bedrock Converse, for bodies and stream events.

Requests (OpenAI → Converse):

- ``system``/``developer`` messages become ``system`` text blocks; the rest
  become alternating ``user``/``assistant`` messages of content blocks
  (consecutive turns of one role are merged, as Converse requires).
- Images must be base64 ``data:`` URLs (Converse takes bytes, not URLs);
  ``input_audio`` is not accepted by Converse and is a 400.
- Assistant ``tool_calls`` become ``toolUse`` blocks; ``tool`` messages become
  ``toolResult`` blocks (JSON content when the result parses as an object).
- ``max_tokens``, ``temperature``, ``top_p`` and ``stop`` map onto
  ``inferenceConfig``; ``tools``/``tool_choice`` onto ``toolConfig``. Converse
  has one choice per call, so ``n`` > 1 is a 400.

Usage: Converse's ``inputTokens`` excludes prompt-cache traffic, so the
gateway's ``input_tokens`` adds ``cacheReadInputTokens`` and
``cacheWriteInputTokens`` (every prompt token counted once) and
``cached_input_tokens`` is ``cacheReadInputTokens``.
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
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}


def to_converse(request: JSON) -> JSON:
    if request.get("n") not in (None, 1):
        raise InvalidRequestError("Bedrock Converse returns one choice (n=1)", param="n")
    system, messages = _conversation(request.get("messages"))
    body: JSON = {"messages": messages}
    if system:
        body["system"] = [{"text": text} for text in system]
    inference: JSON = {}
    max_tokens = request.get("max_completion_tokens") or request.get("max_tokens")
    if max_tokens is not None:
        inference["maxTokens"] = max_tokens
    for key, name in (("temperature", "temperature"), ("top_p", "topP")):
        if request.get(key) is not None:
            inference[name] = request[key]
    stop = walk.stop_sequences(request)
    if stop:
        inference["stopSequences"] = stop
    if inference:
        body["inferenceConfig"] = inference
    if request.get("tools") and request.get("tool_choice") != "none":
        tool_config: JSON = {"tools": [_tool(t, i) for i, t in enumerate(request["tools"])]}
        choice = _tool_choice(request.get("tool_choice"))
        if choice is not None:
            tool_config["toolChoice"] = choice
        body["toolConfig"] = tool_config
    return body


def _conversation(messages: Any) -> tuple[list[str], list[JSON]]:
    return walk.conversation(
        messages, system=_text, user=_blocks, assistant=_assistant_blocks, tool=_tool_result
    )


def _blocks(content: Any, i: int) -> list[JSON]:
    return walk.content_blocks(
        content, i, provider="Bedrock", text=lambda text: {"text": text}, image=_image
    )


def _text(content: Any, i: int) -> str:
    return "".join(b.get("text", "") for b in _blocks(content, i))


def _image(spec: Any, i: int) -> JSON:
    url = walk.image_url(spec)
    match = walk.DATA_URL.fullmatch(url) if isinstance(url, str) else None
    fmt = IMAGE_FORMATS.get(match["media"]) if match else None
    if match is None or fmt is None:
        raise InvalidRequestError(
            f"messages[{i}]: Bedrock images must be base64 data: URLs of png, jpeg, gif or webp",
            param=f"messages[{i}].content",
        )
    return {"image": {"format": fmt, "source": {"bytes": match["data"]}}}


def _assistant_blocks(message: JSON, i: int) -> list[JSON]:
    blocks = _blocks(message.get("content"), i)
    for call_id, name, arguments in walk.tool_calls(message, i):
        blocks.append({"toolUse": {"toolUseId": call_id, "name": name, "input": arguments}})
    return blocks


def _tool_result(message: JSON, i: int) -> JSON:
    call_id = walk.tool_call_id(message, i)
    content = message.get("content")
    if isinstance(content, list):
        content = _text(content, i)
    parsed = walk.json_object(content)
    block = {"json": parsed} if parsed is not None else {"text": content or ""}
    return {"toolResult": {"toolUseId": call_id, "content": [block]}}


def _tool(tool: Any, i: int) -> JSON:
    function = walk.function_tool(tool, i)
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    spec: JSON = {"name": function["name"], "inputSchema": {"json": schema}}
    if function.get("description"):
        spec["description"] = function["description"]
    return {"toolSpec": spec}


def _tool_choice(choice: Any) -> JSON | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"auto": {}}
    if choice == "required":
        return {"any": {}}
    return {"tool": {"name": walk.named_tool_choice(choice)}}


# -- responses ------------------------------------------------------------------------


def usage_from_converse(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage(estimated=True)
    try:
        fresh = int(usage.get("inputTokens") or 0)
        read = int(usage.get("cacheReadInputTokens") or 0)
        written = int(usage.get("cacheWriteInputTokens") or 0)
        output = int(usage.get("outputTokens") or 0)
    except (TypeError, ValueError):
        return Usage(estimated=True)
    return Usage(fresh + read + written, output, read)


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def from_converse(response: JSON, model: str) -> tuple[JSON, Usage]:
    message = (response.get("output") or {}).get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        raise ProviderError("upstream response has no output.message.content")
    text: list[str] = []
    calls: list[JSON] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            text.append(block["text"])
        use = block.get("toolUse")
        if isinstance(use, dict):
            arguments = orjson.dumps(use.get("input") or {}).decode()
            function = {"name": use.get("name"), "arguments": arguments}
            calls.append({"id": use.get("toolUseId"), "type": "function", "function": function})
    reply: JSON = {"role": "assistant", "content": "".join(text) or (None if calls else "")}
    if calls:
        reply["tool_calls"] = calls
    reply["refusal"] = None
    usage = usage_from_converse(response.get("usage"))
    body = {
        "id": f"bedrock-{time.time_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": finish_reason(response.get("stopReason")),
            }
        ],
        "usage": usage.to_openai(),
    }
    return body, usage


class StreamTranslator:
    """ConverseStream events (``:event-type`` + JSON payload) → OpenAI chunks.

    The stream ends with ``messageStop`` (the stop reason) followed by
    ``metadata`` (usage); the usage chunk goes out on ``metadata``.
    """

    def __init__(self, model: str) -> None:
        self.id = f"bedrock-{time.time_ns()}"
        self.created = int(time.time())
        self.model = model
        self.tool_index: dict[int, int] = {}
        self.finished = False
        self.done = False

    def feed(self, event_type: str, payload: JSON) -> list[JSON]:
        if event_type == "messageStart":
            return [self._chunk({"role": "assistant", "content": ""})]
        if event_type == "contentBlockStart":
            return self._block_start(payload)
        if event_type == "contentBlockDelta":
            return self._block_delta(payload)
        if event_type == "messageStop":
            self.finished = True
            return [self._chunk({}, finish_reason(payload.get("stopReason")))]
        if event_type == "metadata":
            self.done = True
            usage = usage_from_converse(payload.get("usage"))
            out = [] if self.finished else [self._chunk({}, "stop")]
            return [*out, {**self._frame(), "choices": [], "usage": usage.to_openai()}]
        return []  # contentBlockStop and event types added after this was written

    def _block_start(self, payload: JSON) -> list[JSON]:
        use = (payload.get("start") or {}).get("toolUse")
        if not isinstance(use, dict):
            return []
        block = int(payload.get("contentBlockIndex") or 0)
        index = self.tool_index.setdefault(block, len(self.tool_index))
        call = {
            "index": index,
            "id": use.get("toolUseId"),
            "type": "function",
            "function": {"name": use.get("name"), "arguments": ""},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, payload: JSON) -> list[JSON]:
        delta = payload.get("delta") or {}
        if isinstance(delta.get("text"), str) and delta["text"]:
            return [self._chunk({"content": delta["text"]})]
        use = delta.get("toolUse")
        if isinstance(use, dict) and use.get("input"):
            index = self.tool_index.get(int(payload.get("contentBlockIndex") or 0))
            if index is None:
                raise ProviderError("upstream sent tool input for an unknown content block")
            return [
                self._chunk(
                    {"tool_calls": [{"index": index, "function": {"arguments": use["input"]}}]}
                )
            ]
        return []

    def _frame(self) -> JSON:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**self._frame(), "choices": [choice]}
