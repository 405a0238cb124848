"""Token estimates for when an exact count is not (yet) available.

No tokenizer downloads at run time, so estimates are deliberately simple:
``bytes/4`` for the expected count (TPM reservations), and the UTF-8 byte
count as an upper bound (budget reservations) - byte-level BPE never emits
more tokens than bytes, plus a small per-message framing allowance.
"""

from __future__ import annotations

from typing import Any

PER_MESSAGE_OVERHEAD = 8


def _text_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, list):
        return sum(_text_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(_text_bytes(v) for v in value.values())
    if value is None or isinstance(value, bool):
        return 0
    return len(str(value))


def input_upper_bound(request: dict[str, Any]) -> int:
    """An upper bound on prompt tokens for chat (or embeddings) requests."""
    messages = request.get("messages")
    if isinstance(messages, list):
        total = sum(_text_bytes(m) + PER_MESSAGE_OVERHEAD for m in messages)
        total += _text_bytes(request.get("tools"))
        return total + PER_MESSAGE_OVERHEAD
    return _text_bytes(request.get("input")) + PER_MESSAGE_OVERHEAD


def estimate_input(request: dict[str, Any]) -> int:
    """A typical-case prompt token estimate (about four bytes per token)."""
    return max(1, input_upper_bound(request) // 4)


def estimate_text(text: str) -> int:
    return max(1, len(text.encode("utf-8")) // 4) if text else 0
