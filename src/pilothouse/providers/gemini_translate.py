"""OpenAI chat-completions ⇄ Gemini ``generateContent``, for bodies and stream chunks.

Requests (OpenAI → Gemini):

- ``system``/``developer`` messages are joined into ``systemInstruction``;
  Gemini has no system turns. ``assistant`` becomes role ``model``.
- Text parts stay text; images become ``inlineData`` (base64 ``data:`` URLs) or
  ``fileData`` (http(s) and ``gs://`` URLs); ``input_audio`` becomes
  ``inlineData`` with an ``audio/<format>`` MIME type.
- Assistant ``tool_calls`` become ``functionCall`` parts; ``tool`` messages
  become ``functionResponse`` parts in a user turn. Gemini names function
  responses by function name, not call id, so the name is looked up from the
  assistant turn that made the call. Consecutive turns of one role are merged.
- ``temperature``, ``top_p``, ``max_tokens``, ``stop``, ``n``, ``seed``,
  ``presence_penalty`` and ``frequency_penalty`` map onto ``generationConfig``;
  ``response_format`` maps onto ``responseMimeType``/``responseJsonSchema``.

Responses: a blocked prompt (``promptFeedback.blockReason``) or a candidate
stopped for safety with nothing to show is a :class:`ContentBlockedError`
(a non-retryable 400, ``code: content_filter``) naming the reason, so the caller sees why
instead of an empty answer. Usage: ``promptTokenCount`` includes cached tokens
(``cachedContentTokenCount``); thinking tokens are billed as output.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import orjson

from pilothouse.errors import InvalidRequestError, ProviderError
from pilothouse.providers import openai_messages as walk
from pilothouse.providers.base import JSON, Usage

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
BLOCKED = frozenset(k for k, v in FINISH_REASONS.items() if v == "content_filter")


class ContentBlockedError(ProviderError):
    """The provider's safety system refused the prompt or withheld the answer.

    Not retryable (another attempt gets the same verdict): the caller sees a 400
    with ``code: content_filter`` and the reason Gemini gave.
    """

    code = "content_filter"

    def __init__(self, message: str) -> None:
        super().__init__(message, upstream_status=400, retryable=False)


def to_gemini(request: JSON) -> JSON:
    """Build the ``generateContent`` body for an OpenAI chat request."""
    system, contents = _conversation(request.get("messages"))
    body: JSON = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    config = _generation_config(request)
    if config:
        body["generationConfig"] = config
    if request.get("tools"):
        declarations = [_tool(t, i) for i, t in enumerate(request["tools"])]
        body["tools"] = [{"functionDeclarations": declarations}]
        choice = _tool_config(request.get("tool_choice"))
        if choice is not None:
            body["toolConfig"] = {"functionCallingConfig": choice}
    return body


def _generation_config(request: JSON) -> JSON:
    config: JSON = {}
    simple = {
        "temperature": "temperature",
        "top_p": "topP",
        "seed": "seed",
        "presence_penalty": "presencePenalty",
        "frequency_penalty": "frequencyPenalty",
    }
    for key, name in simple.items():
        if request.get(key) is not None:
            config[name] = request[key]
    max_tokens = request.get("max_completion_tokens") or request.get("max_tokens")
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    n = request.get("n")
    if n not in (None, 1):
        config["candidateCount"] = n
    stop = walk.stop_sequences(request)
    if stop:
        config["stopSequences"] = stop
    fmt = request.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if isinstance(fmt, dict) and kind in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema") if kind == "json_schema" else None
        if isinstance(schema, dict):
            config["responseJsonSchema"] = schema
    return config


def _conversation(messages: Any) -> tuple[list[str], list[JSON]]:
    call_names: dict[str, str] = {}
    return walk.conversation(
        messages,
        system=_text,
        user=_parts,
        assistant=partial(_assistant_parts, call_names=call_names),
        tool=partial(_function_response, call_names=call_names),
        assistant_role="model",
        key="parts",
    )


def _parts(content: Any, i: int) -> list[JSON]:
    return walk.content_blocks(
        content,
        i,
        provider="Gemini",
        text=lambda text: {"text": text},
        image=_image,
        others={"input_audio": _audio},
    )


def _text(content: Any, i: int) -> str:
    return "".join(p.get("text", "") for p in _parts(content, i))


def _audio(part: JSON, i: int) -> JSON:
    audio = part.get("input_audio") or {}
    fmt = audio.get("format") if isinstance(audio, dict) else None
    if not isinstance(fmt, str) or not isinstance(audio.get("data"), str):
        raise InvalidRequestError(
            f"messages[{i}]: input_audio needs data and format",
            param=f"messages[{i}].content",
        )
    return {"inlineData": {"mimeType": f"audio/{fmt}", "data": audio["data"]}}


def _image(spec: Any, i: int) -> JSON:
    url = walk.image_url(spec)
    if isinstance(url, str):
        match = walk.DATA_URL.fullmatch(url)
        if match:
            return {"inlineData": {"mimeType": match["media"], "data": match["data"]}}
        if url.startswith(("https://", "http://", "gs://")):
            return {"fileData": {"fileUri": url, "mimeType": _guess_image_type(url)}}
    raise InvalidRequestError(
        f"messages[{i}]: images must be base64 data: URLs or http(s)/gs:// URLs",
        param=f"messages[{i}].content",
    )


def _guess_image_type(url: str) -> str:
    suffix = url.rsplit(".", 1)[-1].lower().split("?", 1)[0]
    return {"png": "image/png", "webp": "image/webp", "gif": "image/gif"}.get(suffix, "image/jpeg")


def _assistant_parts(message: JSON, i: int, call_names: dict[str, str]) -> list[JSON]:
    parts = _parts(message.get("content"), i)
    for call_id, name, arguments in walk.tool_calls(message, i, need_id=False):
        if isinstance(call_id, str):
            call_names[call_id] = name
        parts.append({"functionCall": {"name": name, "args": arguments}})
    return parts


def _function_response(message: JSON, i: int, call_names: dict[str, str]) -> JSON:
    call_id = message.get("tool_call_id")
    name = call_names.get(call_id) if isinstance(call_id, str) else None
    if name is None:
        raise InvalidRequestError(
            f"messages[{i}] (role tool) must answer a tool call made earlier in the conversation",
            param=f"messages[{i}].tool_call_id",
        )
    content = message.get("content")
    if isinstance(content, list):
        content = _text(content, i)
    parsed = walk.json_object(content)
    response = parsed if parsed is not None else {"content": content or ""}
    return {"functionResponse": {"name": name, "response": response}}


def _tool(tool: Any, i: int) -> JSON:
    function = walk.function_tool(tool, i)
    out: JSON = {"name": function["name"]}
    if function.get("description"):
        out["description"] = function["description"]
    if function.get("parameters"):
        out["parametersJsonSchema"] = function["parameters"]
    return out


def _tool_config(choice: Any) -> JSON | None:
    if choice is None or choice == "auto":
        return None if choice is None else {"mode": "AUTO"}
    if choice == "none":
        return {"mode": "NONE"}
    if choice == "required":
        return {"mode": "ANY"}
    return {"mode": "ANY", "allowedFunctionNames": [walk.named_tool_choice(choice)]}


# -- responses ------------------------------------------------------------------------


def usage_from_gemini(meta: Any) -> Usage:
    if not isinstance(meta, dict):
        return Usage(estimated=True)
    try:
        prompt = int(meta.get("promptTokenCount") or 0)
        output = int(meta.get("candidatesTokenCount") or 0) + int(
            meta.get("thoughtsTokenCount") or 0
        )
        cached = int(meta.get("cachedContentTokenCount") or 0)
    except (TypeError, ValueError):
        return Usage(estimated=True)
    return Usage(prompt, output, cached)


def check_prompt_feedback(response: JSON) -> None:
    feedback = response.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if reason:
        raise ContentBlockedError(f"the provider's safety filter blocked the prompt ({reason})")


def finish_reason(reason: Any, has_calls: bool) -> str | None:
    if not isinstance(reason, str) or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    if has_calls and reason == "STOP":
        return "tool_calls"
    return FINISH_REASONS.get(reason, "stop")


def candidate_message(candidate: JSON, call_prefix: str) -> tuple[str, list[JSON]]:
    """The text and OpenAI tool calls of one candidate (thought parts are skipped)."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    text: list[str] = []
    calls: list[JSON] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict) or part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            text.append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, dict) and isinstance(call.get("name"), str):
            call_id = call.get("id") or f"{call_prefix}_{len(calls)}"
            arguments = orjson.dumps(call.get("args") or {}).decode()
            function = {"name": call["name"], "arguments": arguments}
            calls.append({"id": call_id, "type": "function", "function": function})
    return "".join(text), calls


def from_gemini(response: JSON, model: str) -> tuple[JSON, Usage]:
    """A ``generateContent`` response → an OpenAI ``chat.completion`` body and its usage."""
    check_prompt_feedback(response)
    candidates = response.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise ProviderError("upstream response has no candidates")
    response_id = str(response.get("responseId") or f"gemini-{time.time_ns()}")
    choices = []
    for position, candidate in enumerate(candidates):
        if not isinstance(candidate, dict):
            raise ProviderError("upstream sent a malformed candidate")
        text, calls = candidate_message(candidate, f"call_{response_id}_{position}")
        reason = candidate.get("finishReason")
        if reason in BLOCKED and not text and not calls:
            raise ContentBlockedError(
                f"the provider's safety filter withheld the answer ({reason})"
            )
        reply: JSON = {"role": "assistant", "content": text or (None if calls else "")}
        if calls:
            reply["tool_calls"] = calls
        reply["refusal"] = None
        choices.append(
            {
                "index": int(candidate.get("index") or position),
                "message": reply,
                "logprobs": None,
                "finish_reason": finish_reason(reason, bool(calls)) or "stop",
            }
        )
    usage = usage_from_gemini(response.get("usageMetadata"))
    body = {
        "id": response_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": response.get("modelVersion") or model,
        "choices": choices,
        "usage": usage.to_openai(),
    }
    return body, usage


class StreamTranslator:
    """Gemini stream responses (each a partial ``GenerateContentResponse``) → OpenAI chunks.

    Gemini sends each tool call whole, so every call becomes one chunk carrying
    its full arguments. ``usageMetadata`` is cumulative; the last one wins.
    """

    def __init__(self, model: str) -> None:
        self.id = f"gemini-{time.time_ns()}"
        self.created = int(time.time())
        self.model = model
        self.usage: Any = None
        self.started: set[int] = set()
        self.tool_calls: dict[int, int] = {}
        self.finished: set[int] = set()

    def feed(self, response: JSON) -> list[JSON]:
        check_prompt_feedback(response)
        if response.get("responseId"):
            self.id = str(response["responseId"])
        self.model = str(response.get("modelVersion") or self.model)
        if response.get("usageMetadata") is not None:
            self.usage = response["usageMetadata"]
        chunks: list[JSON] = []
        for position, candidate in enumerate(response.get("candidates") or []):
            if isinstance(candidate, dict):
                chunks.extend(self._candidate(candidate, position))
        return chunks

    def close(self) -> list[JSON]:
        """Finish every open choice and emit the usage chunk."""
        chunks = [self._chunk(i, {}, "stop") for i in sorted(self.started - self.finished)]
        usage = usage_from_gemini(self.usage) if self.usage else Usage(estimated=True)
        return [*chunks, {**self._frame(), "choices": [], "usage": usage.to_openai()}]

    def _candidate(self, candidate: JSON, position: int) -> list[JSON]:
        index = int(candidate.get("index") or position)
        chunks: list[JSON] = []
        if index not in self.started:
            self.started.add(index)
            chunks.append(self._chunk(index, {"role": "assistant", "content": ""}))
        seen = self.tool_calls.get(index, 0)
        text, calls = candidate_message(candidate, f"call_{self.id}_{index}_{seen}")
        reason = candidate.get("finishReason")
        if reason in BLOCKED and not text and not calls and len(chunks) == 1:
            raise ContentBlockedError(
                f"the provider's safety filter withheld the answer ({reason})"
            )
        if text:
            chunks.append(self._chunk(index, {"content": text}))
        for n, call in enumerate(calls):
            chunks.append(self._chunk(index, {"tool_calls": [{"index": seen + n, **call}]}))
        self.tool_calls[index] = seen + len(calls)
        finish = finish_reason(reason, self.tool_calls[index] > 0)
        if finish is not None and index not in self.finished:
            self.finished.add(index)
            chunks.append(self._chunk(index, {}, finish))
        return chunks

    def _frame(self) -> JSON:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }

    def _chunk(self, index: int, delta: JSON, finish: str | None = None) -> JSON:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**self._frame(), "choices": [choice]}
