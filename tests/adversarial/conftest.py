"""Shared fixtures for the adversarial suite: real deployments and the hostile inputs."""

from __future__ import annotations

import json
from typing import Any

PROVIDER_SECRET = "sk-adversarial-provider-" + "7" * 24


def nested(depth: int, leaf: str = '"x"') -> str:
    """JSON text of ``depth`` nested arrays (built as text: orjson cannot write it)."""
    return "[" * depth + leaf + "]" * depth


def with_raw(obj: dict[str, Any], **raw_fields: str) -> bytes:
    """``obj`` as JSON with extra fields whose values are given as raw JSON text."""
    text = json.dumps(obj)
    extra = ",".join(f"{json.dumps(k)}:{v}" for k, v in raw_fields.items())
    if extra:
        text = text[:-1] + ("," if obj else "") + extra + "}"
    return text.encode()
