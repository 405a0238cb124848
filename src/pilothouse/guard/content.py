"""The content-category guard and its pluggable classifiers.

``classifier.type`` names the classifier: ``pattern`` (the default, local phrase
patterns with spans), ``moderation`` (the ``model`` alias's moderation endpoint)
or ``judge`` (the ``model`` chat alias answers with JSON scores), or a plugin from
the ``pilothouse.content_classifiers`` entry-point group or ``package.module:Class``.
A local classifier is scanned inline like any pattern-tier guard; a remote one
(``remote = True``) is awaited by the engine on the event loop, bounded by its
``timeout_s``, and a failure or an unreadable answer is decided by ``on_error``.
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Protocol

from pilothouse.guard.base import Finding, GuardContext, RemoteCall, Scan, Segment
from pilothouse.guard.config import ClassifierConfig, GuardSpec

# A deliberately conservative baseline: explicit phrases, not single trigger words.
CONTENT_PATTERNS: dict[str, str] = {
    "violence": r"\b(?:how (?:do i|to|can i) (?:kill|murder|stab|shoot|poison) (?:a |my |the )?"
    r"(?:person|people|someone|him|her|them|neighbou?r|wife|husband)"
    r"|i will kill (?:you|him|her|them)"
    r"|build (?:a |an )?(?:pipe )?bomb|make (?:a |an )?(?:explosive|bomb))\b",
    "self_harm": r"\b(?:kill myself|end my life|commit suicide|ways to (?:self[- ]harm|die)"
    r"|how (?:to|can i) (?:cut|hurt) myself)\b",
    "sexual": r"\b(?:explicit sex(?:ual)? (?:scene|content|story)|porn(?:ographic)?"
    r"|nude (?:photos?|images?) of)\b",
    "hate": r"\b(?:(?:all|those) (?:\w+ )?"
    r"(?:people|immigrants|jews|muslims|christians|blacks|whites)"
    r" (?:are|should be) (?:vermin|animals|exterminated|killed|subhuman)"
    r"|ethnic cleansing is good)\b",
}
DEFAULT_CATEGORIES = tuple(CONTENT_PATTERNS)


class ContentClassifier(Protocol):
    """A classifier plugin: built from ``(config, categories)``; ``name`` goes on receipts.

    A local one implements ``spans(text) -> list[Finding]``; a remote one sets
    ``remote = True`` and implements ``async classify(text, call) -> Verdict``
    (:class:`~pilothouse.guard.content_remote.Verdict`)."""

    name: str
    remote: bool
    model: str | None


class PatternContentClassifier:
    name = "pattern"
    remote = False
    model = None

    def __init__(self, config: ClassifierConfig | None, categories: list[str]) -> None:
        unknown = [c for c in categories if c not in CONTENT_PATTERNS]
        if unknown:
            raise ValueError(
                f"categories: unknown {unknown}; known: {', '.join(sorted(CONTENT_PATTERNS))}"
            )
        self.categories = categories
        self.patterns = {k: re.compile(v, re.IGNORECASE) for k, v in CONTENT_PATTERNS.items()}

    def spans(self, text: str) -> list[Finding]:
        return [
            Finding(cat.upper(), m.start(), m.end(), 0.9)
            for cat in self.categories
            if (p := self.patterns.get(cat)) is not None
            for m in p.finditer(text)
        ]


Factory = Callable[[ClassifierConfig | None, list[str]], Any]
BUILTIN_CLASSIFIERS: dict[str, str] = {
    "pattern": "pilothouse.guard.content:PatternContentClassifier",
    "moderation": "pilothouse.guard.content_remote:ModerationClassifier",
    "judge": "pilothouse.guard.content_remote:JudgeClassifier",
}


def classifier_names() -> dict[str, str]:
    names = dict(BUILTIN_CLASSIFIERS)
    for ep in entry_points(group="pilothouse.content_classifiers"):
        names.setdefault(ep.name, ep.value)
    return names


def build_content_classifier(config: ClassifierConfig | None, categories: list[str]) -> Any:
    kind = (config.type if config is not None else None) or "pattern"
    names = classifier_names()
    target = names.get(kind) or (kind if ":" in kind else None)
    if target is None:
        raise ValueError(
            f"classifier.type: unknown content classifier {kind!r}; known: "
            + ", ".join(sorted(names))
        )
    module, _, attr = target.partition(":")
    try:
        factory: Factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"classifier.type: cannot load {target!r}: {exc}") from None
    return factory(config, categories)


class ContentGuard:
    heavy = False

    def __init__(self, spec: GuardSpec, ctx: GuardContext) -> None:
        self.spec = spec
        self.categories = list(spec.categories or DEFAULT_CATEGORIES)
        self.classifier = build_content_classifier(spec.classifier, self.categories)
        self.remote = bool(getattr(self.classifier, "remote", False))
        self.timeout_s = spec.classifier.timeout_s if spec.classifier is not None else None
        self.info: dict[str, Any] = {"classifier": self.classifier.name}
        if getattr(self.classifier, "model", None):
            self.info["classifier_model"] = self.classifier.model

    def scan(self, segment: Segment) -> Scan:
        if self.remote:  # only the engine's awaited path can call out; never fail open here
            raise RuntimeError(f"the {self.classifier.name} classifier needs the gateway")
        started = time.perf_counter()
        found = self.classifier.spans(segment.text)
        ms = round((time.perf_counter() - started) * 1000, 3)
        return Scan(
            found, max((f.score for f in found), default=0.0), {**self.info, "classifier_ms": ms}
        )

    async def scan_remote(self, segment: Segment, call: RemoteCall) -> Scan:
        """One classifier call on the whole segment: a category at or over its threshold is
        a finding spanning the segment (there are no spans to point at)."""
        started = time.perf_counter()
        verdict = await self.classifier.classify(segment.text, call)
        ms = round((time.perf_counter() - started) * 1000, 3)
        n = len(segment.text)
        scores = verdict.scores
        findings = [Finding(cat.upper(), 0, n, scores.get(cat, 1.0)) for cat in verdict.hits if n]
        info = {**self.info, "classifier_ms": ms}
        if verdict.request_id:
            info["classifier_request"] = verdict.request_id
        return Scan(findings, round(max(scores.values(), default=0.0), 4), info)
