"""Legacy text completions (``/v1/completions``) ↔ the gateway's canonical chat shape.

Inside the gateway every request is a chat completion (DESIGN.md, "canonical
format"), so the legacy endpoint is a pair of edges: the ingress turns the
prompt into one user message and answers in ``text_completion`` shape; a
provider with a native completions endpoint sends the prompt as is and hands
its answer back as chat. Guards, cache, budgets, usage and traces in between
never see the difference.
"""

from __future__ import annotations

from typing import Any

from pilothouse.providers.base import JSON

# Fields only a native completions endpoint understands; a chat translation refuses them.
NATIVE_ONLY = ("suffix", "echo", "logprobs", "best_of")
SHARED = (
    "model", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options", "stop",
    "seed", "user", "logit_bias", "presence_penalty", "frequency_penalty",
)  # fmt: skip


def native_completions(provider: Any) -> bool:
    """Whether ``provider`` has a ``/completions`` endpoint of its own."""
    return bool(getattr(provider, "native_completions", False))


def prompt_of(chat_request: JSON) -> str:
    """The (possibly guarded) prompt back out of the canonical chat request."""
    messages = chat_request.get("messages") or [{}]
    content = messages[-1].get("content") if isinstance(messages[-1], dict) else ""
    return content if isinstance(content, str) else ""


def upstream_body(chat_request: JSON, extras: JSON, model: str) -> JSON:
    """A native ``/completions`` body from the canonical request and the legacy-only fields."""
    body = {k: v for k, v in chat_request.items() if k in SHARED}
    body.update(extras)
    body["model"] = model
    body["prompt"] = prompt_of(chat_request)
    return body


def _chat_choice(choice: Any, index: int) -> JSON:
    choice = choice if isinstance(choice, dict) else {}
    text = choice.get("text")
    return {
        "index": choice.get("index", index),
        "message": {"role": "assistant", "content": text if isinstance(text, str) else ""},
        "finish_reason": choice.get("finish_reason"),
        "logprobs": choice.get("logprobs"),
    }


def text_to_chat(body: JSON) -> JSON:
    """An upstream ``text_completion`` as a chat completion."""
    raw = body.get("choices")
    choices: list[Any] = raw if isinstance(raw, list) else []
    out = {k: v for k, v in body.items() if k != "choices"}
    out["object"] = "chat.completion"
    out["choices"] = [_chat_choice(c, i) for i, c in enumerate(choices)]
    return out


def text_chunk_to_chat(chunk: JSON) -> JSON:
    """An upstream ``text_completion`` stream chunk as a chat chunk."""
    out = {k: v for k, v in chunk.items() if k != "choices"}
    out["object"] = "chat.completion.chunk"
    out["choices"] = [
        {
            "index": c.get("index", i),
            "delta": {"content": c.get("text") or ""},
            "finish_reason": c.get("finish_reason"),
        }
        for i, c in enumerate(chunk.get("choices") or [])
        if isinstance(c, dict)
    ]
    return out


def completion_id(chat_id: Any) -> str:
    text = str(chat_id or "")
    return "cmpl-" + text.removeprefix("chatcmpl-") if text else "cmpl"


def chat_to_text(body: JSON) -> JSON:
    """A chat completion as the ``text_completion`` a legacy client expects."""
    out: JSON = {
        "id": completion_id(body.get("id")),
        "object": "text_completion",
        "created": body.get("created"),
        "model": body.get("model"),
        "choices": [
            {
                "text": (c.get("message") or {}).get("content") or "",
                "index": c.get("index", i),
                "logprobs": c.get("logprobs"),
                "finish_reason": c.get("finish_reason"),
            }
            for i, c in enumerate(body.get("choices") or [])
        ],
    }
    if body.get("usage") is not None:
        out["usage"] = body["usage"]
    return out


def chat_chunk_to_text(chunk: JSON) -> JSON | None:
    """A chat stream chunk as a ``text_completion`` chunk; ``None`` for a role-only chunk."""
    choices = []
    for i, c in enumerate(chunk.get("choices") or []):
        delta = c.get("delta") or {}
        text = delta.get("content")
        if not text and not c.get("finish_reason"):
            continue
        choices.append(
            {
                "text": text or "",
                "index": c.get("index", i),
                "logprobs": None,
                "finish_reason": c.get("finish_reason"),
            }
        )
    if not choices and chunk.get("usage") is None:
        return None
    out: JSON = {
        "id": completion_id(chunk.get("id")),
        "object": "text_completion",
        "created": chunk.get("created"),
        "model": chunk.get("model"),
        "choices": choices,
    }
    if chunk.get("usage") is not None:
        out["usage"] = chunk["usage"]
    return out
