"""A request's reconstruction from its trace: messages, params, response, attempts,
retrieved documents, tool calls and guard actions.

Input is what the store holds (trace ``content`` and span rows); everything is
read defensively, since application spans arrive in whatever shape a client
library chose. The output is plain data; templates escape every string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from pilothouse.console.formatting import pretty_json, scalar

MAX_TEXT = 100_000
_FLAT_DOC = re.compile(r"^(?:.*\.)?documents\.(\d+)\.(?:document\.)?(id|score|content|text)$")
_DOC_LISTS = ("retrieval.documents", "gen_ai.retrieval.documents", "pilothouse.retrieval.documents")


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: str
    call_id: str | None = None
    result: str | None = None
    origin: str = "response"  # request | response | span
    status: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    text: str
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class Document:
    doc_id: str
    score: str | None
    content: str | None
    span: str


@dataclass(frozen=True, slots=True)
class Attempt:
    number: int
    provider: str
    model: str
    outcome: str
    status_code: str | None
    duration_ms: float
    message: str | None


@dataclass(frozen=True, slots=True)
class GuardAction:
    where: str
    action: str
    detail: str


@dataclass(slots=True)
class Reconstruction:
    captured: bool
    messages: list[Message] = field(default_factory=list)
    params: list[tuple[str, str]] = field(default_factory=list)
    tools: list[tuple[str, str]] = field(default_factory=list)
    response: list[Message] = field(default_factory=list)
    finish_reasons: list[str] = field(default_factory=list)
    response_note: str | None = None
    error: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    guard_actions: list[GuardAction] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"… [{len(text) - MAX_TEXT} more]"


def _as_json_text(value: Any) -> str:
    """Tool arguments are JSON strings in the OpenAI shape: indent them when they parse."""
    if isinstance(value, str):
        try:
            return _clip(pretty_json(orjson.loads(value)))
        except orjson.JSONDecodeError:
            return _clip(value)
    return _clip(pretty_json(value))


def content_text(content: Any) -> str:
    """A message's content as text: strings as they are, parts described one per line."""
    if content is None:
        return ""
    if isinstance(content, str):
        return _clip(content)
    if isinstance(content, list):
        lines = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text":
                lines.append(str(part.get("text", "")))
            elif isinstance(part, Mapping) and part.get("type") == "image_url":
                url = part.get("image_url")
                url = url.get("url") if isinstance(url, Mapping) else url
                url = str(url or "")
                lines.append(f"[image: {url[:80]}{'…' if len(url) > 80 else ''}]")
            else:
                lines.append(pretty_json(part))
        return _clip("\n".join(lines))
    return _clip(pretty_json(content))


def _tool_calls(raw: Any, origin: str) -> tuple[ToolCall, ...]:
    if not isinstance(raw, list):
        return ()
    out = []
    for call in raw:
        if not isinstance(call, Mapping):
            continue
        fn = call.get("function") if isinstance(call.get("function"), Mapping) else {}
        assert isinstance(fn, Mapping)
        name = fn.get("name") or call.get("name") or "?"
        args = fn.get("arguments", call.get("arguments", ""))
        out.append(ToolCall(str(name), _as_json_text(args), _opt(call.get("id")), origin=origin))
    return tuple(out)


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def message(raw: Any, origin: str = "request") -> Message:
    if not isinstance(raw, Mapping):
        return Message("?", pretty_json(raw))
    return Message(
        role=str(raw.get("role") or "?"),
        text=content_text(raw.get("content")),
        name=_opt(raw.get("name")),
        tool_calls=_tool_calls(raw.get("tool_calls"), origin),
        tool_call_id=_opt(raw.get("tool_call_id")),
    )


def _params(request: Mapping[str, Any]) -> list[tuple[str, str]]:
    skip = {"messages", "tools", "input"}
    return [(k, scalar(v)) for k, v in sorted(request.items()) if k not in skip]


def _tools(request: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for tool in request.get("tools") or []:
        if isinstance(tool, Mapping):
            fn = tool.get("function") if isinstance(tool.get("function"), Mapping) else tool
            assert isinstance(fn, Mapping)
            out.append((str(fn.get("name") or "?"), pretty_json(fn.get("parameters") or {})))
    return out


def _response(rec: Reconstruction, response: Any) -> None:
    if not isinstance(response, Mapping):
        if response is not None:
            rec.response_note = pretty_json(response)
        return
    if isinstance(response.get("error"), Mapping):
        err = response["error"]
        rec.error = f"{err.get('type') or 'error'}: {err.get('message') or ''}".strip()
    for choice in response.get("choices") or []:
        if not isinstance(choice, Mapping):
            continue
        msg = choice.get("message") or choice.get("delta") or {}
        rec.response.append(message({"role": "assistant", **msg}, "response"))
        if choice.get("finish_reason"):
            rec.finish_reasons.append(str(choice["finish_reason"]))
    data = response.get("data")
    if not rec.response and isinstance(data, list):
        first = data[0] if data and isinstance(data[0], Mapping) else {}
        dim = len(first.get("embedding") or []) if isinstance(first, Mapping) else 0
        rec.response_note = f"{len(data)} embedding vector(s), {dim} dimensions each"


def _parse_list(value: Any) -> list[Any]:
    """A list attribute: a real list, a JSON array, or a compact ``id:score,id:score`` string."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return [_compact_doc(part) for part in value.split(",") if part.strip()]
    return value if isinstance(value, list) else []


def _compact_doc(part: str) -> dict[str, Any]:
    doc_id, sep, score = part.strip().rpartition(":")
    try:
        float(score)
    except ValueError:
        return {"id": part.strip()}
    return {"id": doc_id, "score": score} if sep and doc_id else {"id": part.strip()}


def documents(span: Mapping[str, Any]) -> list[Document]:
    """Retrieved documents from an application span, in the shapes clients send them."""
    attrs = span.get("attributes") if isinstance(span.get("attributes"), Mapping) else {}
    assert isinstance(attrs, Mapping)
    name = str(span.get("name") or "")
    found: list[Document] = []
    for key in _DOC_LISTS:
        for item in _parse_list(attrs.get(key)):
            if isinstance(item, Mapping):
                doc_id = item.get("id", item.get("document_id", "?"))
                text = item.get("content", item.get("text"))
                found.append(Document(str(doc_id), _opt(item.get("score")), _opt(text), name))
    flat: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        match = _FLAT_DOC.match(str(key))
        if match:
            flat.setdefault(int(match.group(1)), {})[match.group(2)] = value
    for _, doc in sorted(flat.items()):
        text = doc.get("content", doc.get("text"))
        found.append(Document(str(doc.get("id", "?")), _opt(doc.get("score")), _opt(text), name))
    if not found:
        ids = next(
            (_parse_list(v) for k, v in attrs.items() if str(k).endswith("document_ids")), []
        )
        scores = next((_parse_list(v) for k, v in attrs.items() if str(k).endswith("scores")), [])
        for i, doc_id in enumerate(ids):
            score = scores[i] if i < len(scores) else None
            found.append(Document(str(doc_id), _opt(score), None, name))
    return found


def _span_tool_call(span: Mapping[str, Any]) -> ToolCall | None:
    attrs = span.get("attributes") if isinstance(span.get("attributes"), Mapping) else {}
    assert isinstance(attrs, Mapping)
    if attrs.get("gen_ai.operation.name") != "execute_tool" and "gen_ai.tool.name" not in attrs:
        return None
    return ToolCall(
        name=str(attrs.get("gen_ai.tool.name") or span.get("name") or "?"),
        arguments=_as_json_text(attrs.get("gen_ai.tool.call.arguments", "")),
        call_id=_opt(attrs.get("gen_ai.tool.call.id")),
        result=_as_json_text(attrs["gen_ai.tool.call.result"])
        if "gen_ai.tool.call.result" in attrs
        else None,
        origin="span",
        status=_opt(span.get("status")),
    )


def _guard_actions(span: Mapping[str, Any]) -> list[GuardAction]:
    attrs = span.get("attributes") if isinstance(span.get("attributes"), Mapping) else {}
    assert isinstance(attrs, Mapping)
    name = str(span.get("name") or "")
    out = []
    guard_attrs = {k: v for k, v in attrs.items() if "guard" in str(k)}
    if name.startswith("guard") or guard_attrs:
        action = attrs.get("pilothouse.guard.action") or span.get("status_message") or name
        detail = ", ".join(f"{k}={scalar(v)}" for k, v in sorted(guard_attrs.items()))
        out.append(GuardAction(name, str(action), detail))
    for event in span.get("events") or []:
        if isinstance(event, Mapping) and "guard" in str(event.get("name", "")):
            ev_attrs = (
                event.get("attributes") if isinstance(event.get("attributes"), Mapping) else {}
            )
            assert isinstance(ev_attrs, Mapping)
            detail = ", ".join(f"{k}={scalar(v)}" for k, v in sorted(ev_attrs.items()))
            out.append(GuardAction(name, str(event.get("name")), detail))
    return out


def attempts(spans: Sequence[Mapping[str, Any]]) -> list[Attempt]:
    out = []
    for span in spans:
        attrs = span.get("attributes") if isinstance(span.get("attributes"), Mapping) else {}
        assert isinstance(attrs, Mapping)
        number = attrs.get("pilothouse.attempt")
        if not isinstance(number, int) or isinstance(number, bool):
            continue
        code = attrs.get("http.response.status_code")
        out.append(
            Attempt(
                number=number,
                provider=str(attrs.get("gen_ai.provider.name") or "?"),
                model=str(attrs.get("gen_ai.request.model") or "?"),
                outcome=str(attrs.get("pilothouse.outcome") or span.get("status") or "?"),
                status_code=_opt(code),
                duration_ms=(int(span["end_ns"]) - int(span["start_ns"])) / 1e6,
                message=_opt(span.get("status_message")),
            )
        )
    return sorted(out, key=lambda a: a.number)


def reconstruct(content: Any, spans: Sequence[Mapping[str, Any]]) -> Reconstruction:
    rec = Reconstruction(captured=isinstance(content, Mapping) and bool(content))
    if isinstance(content, Mapping):
        request = content.get("request")
        if isinstance(request, Mapping):
            raw_messages = request.get("messages")
            if isinstance(raw_messages, list):
                rec.messages = [message(m) for m in raw_messages]
            elif "input" in request:
                rec.messages = [Message("input", content_text(request["input"]))]
            rec.params = _params(request)
            rec.tools = _tools(request)
        _response(rec, content.get("response"))
        rec.extra = {k: v for k, v in content.items() if k not in ("request", "response")}
    results = {m.tool_call_id: m.text for m in rec.messages if m.role == "tool" and m.tool_call_id}
    for msg in rec.messages:
        for c in msg.tool_calls:
            result = results.get(c.call_id) if c.call_id else None
            rec.tool_calls.append(ToolCall(c.name, c.arguments, c.call_id, result, "request"))
    for msg in rec.response:
        rec.tool_calls.extend(msg.tool_calls)
    rec.attempts = attempts(spans)
    for span in spans:
        rec.documents.extend(documents(span))
        call = _span_tool_call(span)
        if call is not None:
            rec.tool_calls.append(call)
        rec.guard_actions.extend(_guard_actions(span))
    return rec
