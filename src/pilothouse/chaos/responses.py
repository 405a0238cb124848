"""OpenAI-shaped bodies for the chaos upstream (shared by the provider and the server)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from pilothouse.chaos.plan import ChaosConfig, count_words, reply_for
from pilothouse.ids import ulid
from pilothouse.providers.base import JSON
from pilothouse.providers.fanout import choice_count


def completion_id() -> str:
    return "chatcmpl-chaos-" + ulid()


def usage_body(config: ChaosConfig, request: JSON, n_out: int) -> JSON:
    n_in = count_words(request)
    if config.reported_prompt_tokens is not None:
        n_in = config.reported_prompt_tokens
    if config.reported_completion_tokens is not None:
        n_out = config.reported_completion_tokens
    return {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}


def completion(config: ChaosConfig, request: JSON, model: str) -> JSON:
    words = reply_for(config, request)
    limit = request.get("max_completion_tokens") or request.get("max_tokens")
    finish = "length" if isinstance(limit, int) and len(words) >= limit else "stop"
    n = choice_count(request)
    message = {"role": "assistant", "content": " ".join(words)}
    body: JSON = {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": i, "message": dict(message), "finish_reason": finish} for i in range(n)
        ],
    }
    if config.report_usage:
        body["usage"] = usage_body(config, request, len(words) * n)
    return body


def chunks(config: ChaosConfig, request: JSON, model: str) -> Iterator[JSON]:
    """Role chunk, one chunk per word, finish chunk, then usage (when reported).

    With ``n`` > 1 every step is sent once per choice, interleaved, as OpenAI does.
    """
    words = reply_for(config, request)
    cid, created = completion_id(), int(time.time())
    n = choice_count(request)

    def chunk(index: int, delta: JSON, finish: str | None = None) -> JSON:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        }

    limit = request.get("max_completion_tokens") or request.get("max_tokens")
    finish = "length" if isinstance(limit, int) and len(words) >= limit else "stop"
    steps: list[tuple[JSON, str | None]] = [({"role": "assistant", "content": ""}, None)]
    steps += [({"content": word if i == 0 else " " + word}, None) for i, word in enumerate(words)]
    steps.append(({}, finish))
    for delta, end in steps:
        for index in range(n):
            yield chunk(index, delta, end)
    if config.report_usage:
        yield {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage_body(config, request, len(words) * n),
        }


def embeddings(config: ChaosConfig, request: JSON, model: str) -> JSON:
    raw = request.get("input")
    inputs = raw if isinstance(raw, list) else [raw]
    data = []
    n_tokens = 0
    for i, item in enumerate(inputs):
        text = item if isinstance(item, str) else str(item)
        n_tokens += max(1, len(text.split()))
        seed = sum(text.encode()) or 1
        vec = [((seed * (j + 7)) % 1000) / 1000.0 for j in range(config.embedding_dim)]
        data.append({"object": "embedding", "index": i, "embedding": vec})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
    }


MODERATION_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/instructions", "self-harm/intent", "sexual",
    "sexual/minors", "violence", "violence/graphic",
)  # fmt: skip


def moderation(config: ChaosConfig, request: JSON, model: str) -> JSON:
    """One result per input; flagged (harassment) when it contains a ``flag_words`` entry."""
    raw = request.get("input")
    items = raw if isinstance(raw, list) else [raw]
    results = []
    for item in items:
        text = item.get("text", "") if isinstance(item, dict) else str(item or "")
        hit = any(word.lower() in text.lower() for word in config.flag_words)
        categories = {name: hit and name == "harassment" for name in MODERATION_CATEGORIES}
        scores = {name: (0.97 if flagged else 0.0001) for name, flagged in categories.items()}
        results.append({"flagged": hit, "categories": categories, "category_scores": scores})
    return {"id": "modr-chaos-" + ulid(), "model": model, "results": results}
