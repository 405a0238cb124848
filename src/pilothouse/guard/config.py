"""The ``guards:`` config section: named policies of input, output and tool guards.

A policy is attached to a model alias (``models.<alias>.guards``), to a key
(its metadata ``guards``) or to a prompt bundle; the most specific wins.
Guard types are plugin names (see :mod:`pilothouse.guard.registry`), checked
against the registry when the runtime is built, so a typo fails at start-up.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Action = Literal["block", "redact", "pseudonymize", "flag"]
OnError = Literal["block", "allow"]
Provenance = Literal["system", "user", "assistant", "tool", "document"]


class _Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class RecognizerConfig(_Strict, frozen=True):
    """A custom PII recognizer: an entity type found by a regex (optionally with context words)."""

    entity: str
    pattern: str
    score: float = 0.8
    context: list[str] = msgspec.field(default_factory=list)


class ClassifierConfig(_Strict, frozen=True):
    """An optional model behind the injection or content guard (plugin by ``type``).

    Injection: ``onnx`` (a local model file, ``path``). Content: ``pattern`` (the
    default), ``moderation`` (the ``model`` alias's moderation endpoint) or ``judge``
    (the ``model`` chat alias answers with JSON scores); ``type`` defaults to the
    guard's own default when omitted."""

    type: str | None = None
    path: str = ""
    threshold: float = 0.5
    weight: float = 1.0
    # A gateway alias the classifier calls (moderation, judge); its call is its own usage row.
    model: str | None = None
    # Seconds the classifier may take on one segment (default: the policy's ``timeout_s``).
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] | None = None


class GuardSpec(_Strict, frozen=True):
    """One guard in a policy. Fields a guard type does not use are ignored by it."""

    type: str
    action: Action = "block"
    name: str | None = None
    entities: list[str] | None = None
    threshold: float | None = None
    pattern: str | None = None
    categories: list[str] | None = None
    tokens: list[str] = msgspec.field(default_factory=list)
    recognizers: list[RecognizerConfig] = msgspec.field(default_factory=list)
    ner: bool | None = None
    classifier: ClassifierConfig | None = None
    segments: list[Provenance] | None = None

    @property
    def label(self) -> str:
        return self.name or self.type


class ToolPolicy(_Strict, frozen=True):
    allow: list[str] | None = None
    validate_arguments: bool = False
    no_url_after_untrusted: bool = False


class GuardPolicy(_Strict, frozen=True):
    input: list[GuardSpec] = msgspec.field(default_factory=list)
    output: list[GuardSpec] = msgspec.field(default_factory=list)
    # Extra guards for untrusted segments (tool results, retrieved documents); when
    # omitted they get the input guards with a stricter injection threshold.
    untrusted: list[GuardSpec] | None = None
    tools: ToolPolicy | None = None
    on_error: OnError = "block"
    holdback_chars: int = 64
    # A guard in the worker pool (NER, a model, a long text) that takes longer is an error,
    # decided by ``on_error`` like any other failure.
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    # A streamed window held back longer than this (the upstream paused mid-value) is
    # scanned as it stands and released; unset, held text waits for the next chunk.
    holdback_timeout_s: Annotated[float, msgspec.Meta(gt=0)] | None = None
