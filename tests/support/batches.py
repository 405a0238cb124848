"""Helpers for Batch API tests: build JSONL, wait for a batch, read its files."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import openai

DONE = ("completed", "failed", "expired", "cancelled")


def chat_line(custom_id: str, model: str = "chat", text: str = "hello") -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}]},
    }


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def upload(client: openai.OpenAI, content: bytes, name: str = "in.jsonl") -> str:
    return client.files.create(file=(name, io.BytesIO(content)), purpose="batch").id


def wait_done(client: openai.OpenAI, batch_id: str, timeout: float = 120.0) -> Any:
    """Poll until the batch reaches a terminal status (polling interval, not synchronisation)."""
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in DONE:
            return batch
        assert time.monotonic() < deadline, f"batch still {batch.status}: {batch.request_counts}"
        time.sleep(0.05)


def read_lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    text = client.files.content(file_id).text
    return [json.loads(line) for line in text.splitlines()]
