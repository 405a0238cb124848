"""The ``models.<alias>.routing`` and ``models.<alias>.degrade`` config sections.

Conditions of a rule stay a raw mapping here: :mod:`pilothouse.routing.rules`
compiles them (once, at start-up) and is the one place that knows the
condition fields, so an unknown field or alias fails the load naming the rule.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

Strategy = Literal["ordered", "weighted", "latency", "cost", "rules", "cascade"]
#: Strategies that pick another alias (the alias itself needs no targets).
ALIAS_STRATEGIES = ("rules", "cascade")
Share = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class _Frozen(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Immutable and strict about keys, like every config section."""


class RuleConfig(_Frozen, frozen=True):
    """``{when: {...}, use: ALIAS}``: the first rule whose conditions all hold picks ``use``."""

    use: str
    when: dict[str, Any] = msgspec.field(default_factory=dict)
    name: str | None = None  # shown in headers/traces; default ``rules[i]``


class DifficultyConfig(_Frozen, frozen=True):
    """The router plugin whose score ``difficulty`` conditions compare (0 easy … 1 hard)."""

    router: str = "baseline"
    path: str | None = None  # trained model file (``pilothouse routing train``)
    embedder: str | None = None  # alias of an embeddings model, for embedding routers


class JudgeValidator(_Frozen, frozen=True):
    alias: str
    min_score: Share = 0.5


class CascadeConfig(_Frozen, frozen=True):
    """Try ``steps`` in order; escalate when a validator rejects a step's answer."""

    steps: list[str]
    json_schema: bool = True  # a ``response_format: json_schema`` answer must validate
    guard: bool = True  # an output guard that flags (redacts/blocks) the answer escalates
    judge: JudgeValidator | None = None


class RoutingPolicy(_Frozen, frozen=True):
    strategy: Strategy = "ordered"
    rules: list[RuleConfig] = msgspec.field(default_factory=list)
    default: str | None = None
    difficulty: DifficultyConfig | None = None
    cascade: CascadeConfig | None = None
    latency_alpha: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.3  # EWMA weight


class DegradeConfig(_Frozen, frozen=True):
    """Where requests go when every target's breaker is open (or an operator forces it)."""

    when_all_open: str
    strip_tools_when_degraded: bool = True
    timeout_s_when_degraded: Annotated[float, msgspec.Meta(gt=0)] | None = None
