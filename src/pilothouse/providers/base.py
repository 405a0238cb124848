"""The provider Protocol, the canonical result types and the plugin registry.

Inside the gateway a request is the OpenAI chat-completions body as a plain
``dict`` (decoded once with orjson); each provider translates at its edge.
Streams yield OpenAI ``chat.completion.chunk`` dicts; a final chunk with
``usage`` (and no choices) carries the token counts whenever the upstream
can give them.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol, runtime_checkable

import msgspec

from pilothouse.errors import ConfigError

JSON = dict[str, Any]


@dataclass(slots=True)
class Usage:
    """Token counts in the canonical shape; ``estimated`` when not from the upstream."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    estimated: bool = False

    @classmethod
    def from_openai(cls, usage: JSON | None) -> Usage | None:
        """Read an OpenAI ``usage`` object; ``None`` when absent or malformed."""
        if not isinstance(usage, dict):
            return None
        try:
            prompt = int(usage.get("prompt_tokens") or 0)
            completion = int(usage.get("completion_tokens") or 0)
            details = usage.get("prompt_tokens_details") or {}
            cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
        except (TypeError, ValueError):
            return None
        return cls(prompt, completion, cached)

    def to_openai(self) -> JSON:
        out: JSON = {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
        }
        if self.cached_input_tokens:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_input_tokens}
        return out


@dataclass(slots=True)
class ChatResult:
    """A complete (non-streamed) chat completion in OpenAI shape plus its usage."""

    body: JSON
    usage: Usage


@dataclass(slots=True)
class EmbedResult:
    body: JSON
    usage: Usage = field(default_factory=Usage)


def remaining(deadline: float, cap: float | None = None) -> float:
    """Seconds left before ``deadline`` (a ``time.monotonic`` value), optionally capped."""
    left = deadline - time.monotonic()
    if cap is not None:
        left = min(left, cap)
    return max(left, 0.001)


class ProviderConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base for provider config structs; ``type`` is the registry name."""

    type: str


@runtime_checkable
class Provider(Protocol):
    """What routing needs from an upstream. ``deadline`` is a monotonic timestamp."""

    name: str

    async def start(self) -> None: ...

    async def chat(self, request: JSON, model: str, deadline: float) -> ChatResult: ...

    def stream_chat(self, request: JSON, model: str, deadline: float) -> AsyncIterator[JSON]: ...

    async def embed(self, request: JSON, model: str, deadline: float) -> EmbedResult: ...

    async def aclose(self) -> None: ...


class BaseProvider:
    """Convenience base: no-op lifecycle, and unsupported operations raise clearly."""

    config_type: ClassVar[type[ProviderConfig]] = ProviderConfig

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.config = config

    @classmethod
    def preflight(cls, config: Any) -> None:
        """Checks beyond the schema that need no network (files exist, ...); raise ConfigError."""
        return None

    async def start(self) -> None:
        return None

    async def chat(self, request: JSON, model: str, deadline: float) -> ChatResult:
        raise NotImplementedError

    def stream_chat(self, request: JSON, model: str, deadline: float) -> AsyncIterator[JSON]:
        raise NotImplementedError

    async def embed(self, request: JSON, model: str, deadline: float) -> EmbedResult:
        from pilothouse.errors import InvalidRequestError

        raise InvalidRequestError(
            f"provider {self.name!r} ({self.config.type}) does not support embeddings"
        )

    async def aclose(self) -> None:
        return None


ProviderFactory = Callable[[str, Any], Provider]

_BUILTIN: dict[str, str] = {
    "openai": "pilothouse.providers.openai_compat:OpenAIProvider",
    "azure": "pilothouse.providers.azure:AzureProvider",
    "anthropic": "pilothouse.providers.anthropic:AnthropicProvider",
    "llamacpp": "pilothouse.providers.llamacpp:LlamaCppProvider",
    "chaos": "pilothouse.providers.chaos:ChaosProvider",
    "gemini": "pilothouse.providers.gemini:GeminiProvider",
    "bedrock": "pilothouse.providers.bedrock:BedrockProvider",
    "local_embeddings": "pilothouse.providers.local_embeddings:LocalEmbeddingsProvider",
}


def provider_types() -> dict[str, str]:
    """All known provider types: built-ins plus ``pilothouse.providers`` entry points."""
    types = dict(_BUILTIN)
    for ep in entry_points(group="pilothouse.providers"):
        types.setdefault(ep.name, ep.value)
    return types


def provider_class(type_name: str) -> type[BaseProvider]:
    """Import the class registered for ``type_name`` (lazily: SDKs load only when used)."""
    types = provider_types()
    if type_name not in types:
        known = ", ".join(sorted(types))
        raise ConfigError(f"unknown provider type {type_name!r} (known: {known})")
    module_name, _, attr = types[type_name].partition(":")
    cls: type[BaseProvider] = getattr(importlib.import_module(module_name), attr)
    return cls
