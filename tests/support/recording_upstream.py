"""A real HTTP upstream that records what it receives: OpenAI and Anthropic wire formats.

It answers with the last user message (echo) unless the message contains a
``reply:`` directive naming a canned reply, so a test controls both what the
upstream sees (recorded) and what it answers. Streams send one word per event,
so anything split across words is split across chunks.
"""

# ruff: noqa: E501
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.aiohttp_thread import serve_in_thread


@dataclass
class Recorder:
    bodies: list[dict[str, Any]] = field(default_factory=list)
    replies: dict[str, str] = field(default_factory=dict)
    tool_call: dict[str, Any] | None = None  # {"name": ..., "arguments": "..."}
    url: str = ""

    def seen(self) -> str:
        return json.dumps(self.bodies)


def _last_user(messages: list[Any]) -> str:
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content)
    return "ok"


def _reply(rec: Recorder, messages: list[Any], system: Any = None) -> str:
    text = _last_user(messages)
    if "ECHO_SYSTEM" in text:  # a model that leaks its system prompt
        for msg in messages:
            if isinstance(msg, dict) and msg.get("role") == "system":
                return str(msg.get("content"))
        return str(system)
    for needle, answer in rec.replies.items():
        if needle in text:
            return answer
    return text


def _sse(obj: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(obj) + "\n\n").encode()


def build_app(rec: Recorder) -> web.Application:
    async def openai_chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        rec.bodies.append(body)
        text = _reply(rec, body.get("messages") or [])
        base = {"id": "chatcmpl-rec", "created": 1, "model": body.get("model")}
        usage = {"prompt_tokens": 5, "completion_tokens": len(text.split()), "total_tokens": 9}
        call = rec.tool_call
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": None if call else text}
            if call:
                message["tool_calls"] = [{"id": "call_1", "type": "function", "function": call}]
            return web.json_response({**base, "object": "chat.completion", "usage": usage,
                "choices": [{"index": 0, "message": message,
                             "finish_reason": "tool_calls" if call else "stop"}]})  # fmt: skip
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return _sse({**base, "object": "chat.completion.chunk",
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})  # fmt: skip

        await resp.write(chunk({"role": "assistant", "content": ""}))
        if call:
            args = call["arguments"]
            await resp.write(chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                   "function": {"name": call["name"], "arguments": ""}}]}))  # fmt: skip
            for i in range(0, len(args), 5):
                await resp.write(chunk({"tool_calls": [{"index": 0,
                                       "function": {"arguments": args[i : i + 5]}}]}))  # fmt: skip
            await resp.write(chunk({}, "tool_calls"))
        else:
            for i, word in enumerate(text.split(" ")):
                await resp.write(chunk({"content": word if i == 0 else " " + word}))
            await resp.write(chunk({}, "stop"))
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def anthropic_messages(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        rec.bodies.append(body)
        text = _reply(rec, body.get("messages") or [], body.get("system"))
        usage = {"input_tokens": 5, "output_tokens": len(text.split())}
        if not body.get("stream"):
            return web.json_response({"id": "msg_rec", "type": "message", "role": "assistant",
                "model": body.get("model"), "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn", "usage": usage})  # fmt: skip
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(_sse({"type": "message_start", "message": {"id": "msg_rec",
            "type": "message", "role": "assistant", "model": body.get("model"), "content": [],
            "usage": {"input_tokens": 5, "output_tokens": 0}}}, "message_start"))  # fmt: skip
        await resp.write(_sse({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}, "content_block_start"))  # fmt: skip
        for i, word in enumerate(text.split(" ")):
            await resp.write(_sse({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": word if i == 0 else " " + word}},
                "content_block_delta"))  # fmt: skip
        await resp.write(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
        await resp.write(_sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": len(text.split())}}, "message_delta"))  # fmt: skip
        await resp.write(_sse({"type": "message_stop"}, "message_stop"))
        return resp

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        rec.bodies.append(body)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return web.json_response({"object": "list", "model": body.get("model"),
            "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2]}
                     for i in range(len(inputs))],
            "usage": {"prompt_tokens": 3, "total_tokens": 3}})  # fmt: skip

    async def moderations(request: web.Request) -> web.Response:
        body = await request.json()
        rec.bodies.append(body)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return web.json_response({"id": "modr-rec", "model": body.get("model") or "omni-moderation-latest",
            "results": [{"flagged": False, "categories": {}, "category_scores": {}} for _ in inputs]})  # fmt: skip

    app = web.Application()
    app.router.add_post("/v1/moderations", moderations)
    app.router.add_post("/v1/chat/completions", openai_chat)
    app.router.add_post("/v1/messages", anthropic_messages)
    app.router.add_post("/v1/embeddings", embeddings)
    return app


@contextmanager
def recording_upstream() -> Iterator[Recorder]:
    rec = Recorder()
    with serve_in_thread(build_app(rec)) as url:
        rec.url = url
        yield rec
