"""Difficulty routers: plugins that score a request from 0 (easy) to 1 (hard), by name.

``difficulty`` rule conditions compare this score. The ``baseline`` plugin
uses only cheap text features (length, code, reasoning and easy-task
keywords), so it needs no model and adds microseconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Protocol

from pilothouse.errors import ConfigError
from pilothouse.routing.config import DifficultyConfig


class DifficultyRouter(Protocol):
    name: str

    async def score(self, body: dict[str, Any]) -> float:
        """0 (a cheap model will do) … 1 (needs the strong model)."""


Factory = Callable[[DifficultyConfig], DifficultyRouter]
_REGISTRY: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    def wrap(factory: Factory) -> Factory:
        _REGISTRY[name] = factory
        return factory

    return wrap


#: Plugins shipped with pilothouse, imported when first named (no import-time cost).
BUILTIN = {"logreg": "pilothouse.routing.logreg"}


def difficulty_router(config: DifficultyConfig) -> DifficultyRouter:
    if config.router not in _REGISTRY and config.router in BUILTIN:
        import importlib

        importlib.import_module(BUILTIN[config.router])
    factory = _REGISTRY.get(config.router)
    if factory is None:
        known = ", ".join(sorted({*_REGISTRY, *BUILTIN}))
        raise ConfigError(f"unknown difficulty router {config.router!r} (routers: {known})")
    return factory(config)


def prompt_text(body: dict[str, Any]) -> str:
    """The user-visible text of a chat request's messages (the last user turn weighs most)."""
    parts: list[str] = []
    for message in body.get("messages") or ():
        if not isinstance(message, dict) or message.get("role") not in ("user", "system"):
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(
                str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
            )
    return "\n".join(parts)


_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")
_HARD_WORDS = frozenset(
    [
        "prove",
        "proof",
        "derive",
        "theorem",
        "analyze",
        "analyse",
        "compare",
        "tradeoff",
        "trade-off",
        "tradeoffs",
        "trade-offs",
        "optimize",
        "optimise",
        "algorithm",
        "complexity",
        "debug",
        "refactor",
        "architecture",
        "legal",
        "contract",
        "diagnose",
        "diagnosis",
        "why",
        "explain",
    ]
)
_HARD_PHRASES = ("step by step", "step-by-step")
_EASY_WORDS = frozenset(["hi", "hello", "thanks", "translate", "spell", "define", "synonym"])
_EASY_PHRASES = ("thank you", "capital of", "what time", "yes or no")
_CODE_MARKS = ("```", "def ", "class ", "function ", "{\n", ";\n")


def baseline_features(text: str) -> tuple[float, float, float, float]:
    """Length, reasoning words, easy-task words, code: one lower-cased word scan."""
    lowered = text.lower()
    words = _WORD.findall(lowered)
    hard = sum(1 for w in words if w in _HARD_WORDS)
    hard += sum(lowered.count(p) for p in _HARD_PHRASES)
    easy = sum(1 for w in words if w in _EASY_WORDS)
    easy += sum(lowered.count(p) for p in _EASY_PHRASES)
    return (
        math.log1p(len(text.split())) / math.log1p(2000),
        min(hard, 4) / 4,
        min(easy, 2) / 2,
        1.0 if any(mark in text for mark in _CODE_MARKS) else 0.0,
    )


@register("baseline")
class BaselineDifficulty:
    """A fixed linear score over length and keyword features, squashed to 0…1."""

    name = "baseline"
    weights = (3.0, 2.5, -2.5, 1.5)
    bias = -2.0

    def __init__(self, config: DifficultyConfig | None = None) -> None:
        self.config = config

    def score_text(self, text: str) -> float:
        x = baseline_features(text)
        z = self.bias + sum(w * v for w, v in zip(self.weights, x, strict=True))
        return 1.0 / (1.0 + math.exp(-z))

    async def score(self, body: dict[str, Any]) -> float:
        return self.score_text(prompt_text(body))
