"""What routing conditions read about a request, each computed at most once and only if asked.

``budget_used`` and ``difficulty`` cost an await (budget state, a router
plugin) and are filled in by the policy only when a rule that needs them is
reached; everything else is derived from the body, key and metadata on first use.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pilothouse.limits.keys import KeyRecord
from pilothouse.tokens import estimate_input

CAPABILITIES = ("tools", "vision", "audio", "files", "json_schema", "json_object")
_IMAGE = frozenset({"image_url", "image", "input_image"})
_AUDIO = frozenset({"input_audio"})
_FILES = frozenset({"file", "input_file", "document"})


def request_needs(body: dict[str, Any]) -> frozenset[str]:
    """The capabilities a chat request needs from its target."""
    needs: set[str] = set()
    if body.get("tools") or body.get("functions"):
        needs.add("tools")
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object"):
        needs.add(str(fmt["type"]))
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in _IMAGE:
                needs.add("vision")
            elif kind in _AUDIO:
                needs.add("audio")
            elif kind in _FILES:
                needs.add("files")
    return frozenset(needs)


class Features:
    """One request as routing conditions see it."""

    __slots__ = (
        "_input_tokens",
        "_requires",
        "body",
        "budget_used",
        "difficulty",
        "key",
        "loaded",
        "metadata",
        "now",
    )

    def __init__(
        self,
        body: dict[str, Any],
        metadata: dict[str, Any] | None,
        key: KeyRecord | None,
        now: datetime | None = None,
    ) -> None:
        self.body = body
        self.metadata = metadata
        self.key = key
        self.now = now
        self.budget_used: float | None = None
        self.difficulty: float | None = None
        self._input_tokens: int | None = None
        self._requires: frozenset[str] | None = None
        self.loaded: set[str] = set()

    @property
    def input_tokens(self) -> int:
        if self._input_tokens is None:
            self._input_tokens = estimate_input(self.body)
        return self._input_tokens

    @property
    def requires(self) -> frozenset[str]:
        if self._requires is None:
            self._requires = request_needs(self.body)
        return self._requires

    @property
    def key_id(self) -> str | None:
        return self.key.id if self.key is not None else None

    @property
    def key_name(self) -> str | None:
        return self.key.name if self.key is not None else None

    @property
    def key_metadata(self) -> dict[str, Any]:
        return self.key.metadata if self.key is not None else {}
