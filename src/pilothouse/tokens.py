"""Token estimates for when an exact count is not (yet) available.

No tokenizer downloads at run time, so estimates are deliberately simple:
``bytes/4`` for the expected count (TPM reservations), and an upper bound for
budget reservations. Text: the UTF-8 byte count (byte-level BPE never emits
more tokens than bytes) plus a small per-message framing allowance. Media are
not text: an image URL is a few bytes but can cost thousands of tokens, so
each ``image_url``, ``input_audio`` and ``file`` part reserves its provider
type's bound from :class:`ContentBounds` (table in docs/costs.md).
"""

from __future__ import annotations

from typing import Any

from pilothouse.config.schema import ContentBounds

PER_MESSAGE_OVERHEAD = 8

#: Per provider type. OpenAI: a high-detail image costs at most 25,501 tokens (gpt-4o-mini's
#: multiplied tiles); a file (PDF: text plus one image per page) is bounded by the context
#: window. Anthropic: images are scaled to ~1.15 MP, at most ~1,600 tokens; documents by the
#: 200k context. Audio: at least its base64 size (10 tokens/s needs < 60 bit/s otherwise).
DEFAULT_BOUNDS: dict[str, ContentBounds] = {
    "openai": ContentBounds(image_tokens=25_501, audio_tokens=2_000, file_tokens=128_000),
    "azure": ContentBounds(image_tokens=25_501, audio_tokens=2_000, file_tokens=128_000),
    "anthropic": ContentBounds(image_tokens=1_600, audio_tokens=2_000, file_tokens=200_000),
    "default": ContentBounds(image_tokens=25_501, audio_tokens=2_000, file_tokens=200_000),
}
MEDIA_PARTS = ("image_url", "image", "input_image", "input_audio", "file", "input_file", "document")


def bounds_for(
    provider_type: str, overrides: dict[str, ContentBounds] | None = None
) -> ContentBounds:
    """Config ``limits.content_bounds.<type>`` wins over the built-in table."""
    if overrides and provider_type in overrides:
        return overrides[provider_type]
    return DEFAULT_BOUNDS.get(provider_type) or DEFAULT_BOUNDS["default"]


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


def _media_bound(part: dict[str, Any], kind: str, bounds: ContentBounds) -> int:
    if kind in ("image_url", "image", "input_image"):
        return bounds.image_tokens
    if kind == "input_audio":
        return max(bounds.audio_tokens, _text_bytes(part.get("input_audio")))
    return max(bounds.file_tokens, _text_bytes(part.get(kind)))


def _content_bound(value: Any, bounds: ContentBounds | None) -> int:
    """Text bytes, with every media part replaced by its token bound."""
    if isinstance(value, list):
        return sum(_content_bound(v, bounds) for v in value)
    if isinstance(value, dict):
        kind = value.get("type")
        if bounds is not None and isinstance(kind, str) and kind in MEDIA_PARTS:
            return _media_bound(value, kind, bounds)
        return sum(_content_bound(v, bounds) for v in value.values())
    return _text_bytes(value)


def input_upper_bound(request: dict[str, Any], bounds: ContentBounds | None = None) -> int:
    """An upper bound on prompt tokens for chat (or embeddings) requests.

    Without ``bounds`` media parts count only their bytes (an estimate, not a bound).
    """
    messages = request.get("messages")
    if isinstance(messages, list):
        total = sum(_content_bound(m, bounds) + PER_MESSAGE_OVERHEAD for m in messages)
        for name, value in request.items():  # tools, response_format... are prompt too
            if name not in ("messages", "model"):
                total += _text_bytes(value)
        return total + PER_MESSAGE_OVERHEAD
    return _content_bound(request.get("input"), bounds) + PER_MESSAGE_OVERHEAD


def estimate_input(request: dict[str, Any]) -> int:
    """A typical-case prompt token estimate (about four bytes per token)."""
    return max(1, input_upper_bound(request) // 4)


def estimate_text(text: str) -> int:
    return max(1, len(text.encode("utf-8")) // 4) if text else 0
