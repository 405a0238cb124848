"""Budget upper bounds count media parts at their provider type's token bound."""

from __future__ import annotations

import pytest

from pilothouse.config.load import parse_settings
from pilothouse.config.schema import ContentBounds
from pilothouse.errors import ConfigError
from pilothouse.tokens import DEFAULT_BOUNDS, bounds_for, input_upper_bound

IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}


def chat(*parts: object) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "user", "content": list(parts)}]}


def test_each_image_reserves_the_provider_bound_not_its_url_bytes() -> None:
    openai, anthropic = bounds_for("openai"), bounds_for("anthropic")
    text_only = input_upper_bound(chat({"type": "text", "text": "hi"}), openai)
    twenty = input_upper_bound(chat({"type": "text", "text": "hi"}, *[IMAGE] * 20), openai)
    assert twenty - text_only == 20 * openai.image_tokens
    assert input_upper_bound(chat(IMAGE), anthropic) >= anthropic.image_tokens
    assert bounds_for("chaos") == DEFAULT_BOUNDS["default"]


def test_audio_and_files_reserve_at_least_their_bound_and_their_bytes() -> None:
    bounds = bounds_for("openai")
    small = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    big = {"type": "input_audio", "input_audio": {"data": "A" * 50_000, "format": "wav"}}
    assert input_upper_bound(chat(small), bounds) >= bounds.audio_tokens
    assert input_upper_bound(chat(big), bounds) >= 50_000
    by_id = {"type": "file", "file": {"file_id": "file-abc"}}
    assert input_upper_bound(chat(by_id), bounds) >= bounds.file_tokens


def test_tools_and_response_format_count_toward_the_prompt() -> None:
    plain = chat({"type": "text", "text": "hi"})
    with_tools = {**plain, "tools": [{"type": "function", "function": {"name": "x" * 500}}]}
    assert input_upper_bound(with_tools) - input_upper_bound(plain) >= 500


def test_config_overrides_the_table_per_provider_type() -> None:
    settings = parse_settings(
        {"limits": {"content_bounds": {"openai": {"image_tokens": 1105}}}}, source="<t>"
    )
    overrides = settings.limits.content_bounds
    assert bounds_for("openai", overrides) == ContentBounds(image_tokens=1105)
    assert bounds_for("anthropic", overrides) == DEFAULT_BOUNDS["anthropic"]
    with pytest.raises(ConfigError):
        parse_settings({"limits": {"content_bounds": {"x": {"image_tokens": -1}}}}, source="<t>")
