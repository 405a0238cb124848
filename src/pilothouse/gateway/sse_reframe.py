"""Read the gateway's own chat SSE back as frames, for ingresses that speak other stream formats.

The chat stream machinery (keep-alives, fallback before the first byte, usage
accounting, the ledger row) stays in one place (:mod:`sse`); the Anthropic and
Responses ingresses re-frame its output write by write.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

FrameKind = Literal["comment", "done", "error", "chunk"]
Frame = tuple[FrameKind, Any]


def split_frames(data: bytes) -> tuple[list[Frame], bytes]:
    """Every complete frame in ``data``, and the incomplete remainder."""
    frames: list[Frame] = []
    *complete, rest = data.split(b"\n\n")
    for raw in complete:
        if raw.startswith(b":"):
            frames.append(("comment", raw + b"\n\n"))
        elif raw.startswith(b"data: "):
            payload = raw[6:]
            if payload == b"[DONE]":
                frames.append(("done", None))
                continue
            chunk = orjson.loads(payload)
            error = chunk.get("error") if "choices" not in chunk else None
            if isinstance(error, dict):
                frames.append(("error", error))
            else:
                frames.append(("chunk", chunk))
    return frames, rest
