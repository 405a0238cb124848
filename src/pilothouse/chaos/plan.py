"""What the chaos upstream does on each call: a seeded, repeatable fault plan.

A drill is only useful if it can be replayed, so every random choice comes
from one ``random.Random(seed)``; a ``script`` of outcomes is consumed first,
then faults are drawn by rate.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass
from typing import Literal

import msgspec

from pilothouse.providers.base import JSON, ProviderConfig

OutcomeKind = Literal["ok", "error", "timeout", "stall", "cut", "malformed", "reset"]
_SCRIPT_RE = re.compile(r"^(ok|error|timeout|stall|cut|malformed|reset)(?::(\d+))?$")


class LatencyConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Latency before the first byte: fixed, uniform or lognormal (milliseconds)."""

    dist: Literal["fixed", "uniform", "lognormal"] = "fixed"
    value: float = 0.0
    min: float = 0.0
    max: float = 0.0
    median: float = 0.0
    sigma: float = 0.5


class ChaosConfig(ProviderConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    seed: int = 0
    reply: str = "echo"
    replies: dict[str, str] = {}
    script: list[str] = []
    error_rate: float = 0.0
    error_status: int = 500
    retry_after_s: float | None = None
    timeout_rate: float = 0.0
    stall_rate: float = 0.0
    stall_after_chunks: int = 1
    stall_s: float = 30.0
    cut_rate: float = 0.0
    cut_after_chunks: int = 1
    malformed_rate: float = 0.0
    reset_rate: float = 0.0
    latency_ms: LatencyConfig = msgspec.field(default_factory=LatencyConfig)
    chunk_delay_ms: float = 0.0
    report_usage: bool = True
    # Scripted usage reported instead of the word counts, e.g. an upstream that over-reports.
    reported_prompt_tokens: int | None = None
    reported_completion_tokens: int | None = None
    embedding_dim: int = 8
    # Moderation: an input containing one of these words is flagged (category harassment).
    flag_words: list[str] = []

    def __post_init__(self) -> None:
        for entry in self.script:
            if not _SCRIPT_RE.match(entry):
                raise ValueError(
                    f"bad script entry {entry!r}: use ok, error[:STATUS], timeout, stall, cut[:N], "
                    "malformed or reset"
                )


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    status: int = 200
    after_chunks: int = 0
    latency_s: float = 0.0


class ChaosPlan:
    """Draws one :class:`Outcome` per call; thread-safe so a server can share it."""

    def __init__(self, config: ChaosConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._script = list(config.script)
        self._lock = threading.Lock()
        self.calls = 0

    def next(self) -> Outcome:
        with self._lock:
            self.calls += 1
            latency = self._latency()
            if self._script:
                return self._scripted(self._script.pop(0), latency)
            return self._drawn(latency)

    def _scripted(self, entry: str, latency: float) -> Outcome:
        match = _SCRIPT_RE.match(entry)
        assert match is not None  # validated in ChaosConfig
        kind, arg = match.group(1), match.group(2)
        cfg = self.config
        if kind == "error":
            return Outcome("error", status=int(arg or cfg.error_status), latency_s=latency)
        if kind in ("cut", "stall"):
            default = cfg.cut_after_chunks if kind == "cut" else cfg.stall_after_chunks
            n = int(arg) if arg else default
            return Outcome(kind, after_chunks=n, latency_s=latency)  # type: ignore[arg-type]
        return Outcome(kind, latency_s=latency)  # type: ignore[arg-type]

    def _drawn(self, latency: float) -> Outcome:
        cfg = self.config
        roll = self._rng.random()
        for kind, rate in (
            ("error", cfg.error_rate),
            ("timeout", cfg.timeout_rate),
            ("reset", cfg.reset_rate),
            ("malformed", cfg.malformed_rate),
            ("stall", cfg.stall_rate),
            ("cut", cfg.cut_rate),
        ):
            if roll < rate:
                return Outcome(
                    kind,  # type: ignore[arg-type]
                    status=cfg.error_status,
                    after_chunks=cfg.stall_after_chunks
                    if kind == "stall"
                    else cfg.cut_after_chunks,
                    latency_s=latency,
                )
            roll -= rate
        return Outcome("ok", latency_s=latency)

    def _latency(self) -> float:
        lat = self.config.latency_ms
        if lat.dist == "fixed":
            ms = lat.value
        elif lat.dist == "uniform":
            ms = self._rng.uniform(lat.min, lat.max)
        else:
            ms = self._rng.lognormvariate(_log(lat.median), lat.sigma) if lat.median > 0 else 0.0
        return max(ms, 0.0) / 1000.0


def _log(x: float) -> float:
    import math

    return math.log(x)


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def count_words(request: JSON) -> int:
    """The chaos upstream's 'tokenizer': words in every message, plus 3 per message."""
    messages = request.get("messages") or []
    total = 0
    for msg in messages:
        if isinstance(msg, dict):
            total += 3 + len(_text_of(msg.get("content")).split())
    return total


def reply_for(config: ChaosConfig, request: JSON) -> list[str]:
    """The reply as a list of word tokens, honouring ``max_tokens``."""
    messages = request.get("messages") or []
    last_user = ""
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            last_user = _text_of(msg.get("content"))
            break
    text = config.reply
    for needle, answer in config.replies.items():
        if needle in last_user:
            text = answer
            break
    else:
        if text == "echo":
            text = last_user or "ok"
    words = text.split()
    limit = request.get("max_completion_tokens") or request.get("max_tokens")
    if isinstance(limit, int) and limit > 0:
        words = words[:limit]
    return words or ["ok"]
