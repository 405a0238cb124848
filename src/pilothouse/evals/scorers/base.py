"""The scorer plugin interface and registry.

A scorer is a class with a strict msgspec config struct, registered by its
``type`` name: built-ins below, third-party ones through the
``pilothouse.scorers`` entry-point group, or :func:`register_scorer` from Python.
Modules are imported only when a suite uses their type.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import msgspec

from pilothouse.evals.errors import SuiteError
from pilothouse.evals.model import Case, Verdict

ENTRY_POINT_GROUP = "pilothouse.scorers"

_BUILTIN: dict[str, str] = {
    "exact": "pilothouse.evals.scorers.text:ExactScorer",
    "contains": "pilothouse.evals.scorers.text:ContainsScorer",
    "regex": "pilothouse.evals.scorers.text:RegexScorer",
    "numeric": "pilothouse.evals.scorers.text:NumericScorer",
    "json_schema": "pilothouse.evals.scorers.structured:JsonSchemaScorer",
    "grounded": "pilothouse.evals.scorers.grounded:GroundedScorer",
    "judge": "pilothouse.evals.scorers.judge:JudgeScorer",
    "python": "pilothouse.evals.scorers.custom:PythonScorer",
    "retrieval": "pilothouse.rag.scorer:RetrievalScorer",
}
_REGISTERED: dict[str, type[Scorer[Any]]] = {}


class ScorerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Options every scorer accepts.

    ``name`` is the metric prefix (default: the type), so two scorers of one
    type need distinct names. ``when`` restricts the scorer to cases whose
    field (dotted path) equals the value, or one of a list of values.
    """

    type: str
    name: str | None = None
    when: dict[str, Any] = msgspec.field(default_factory=dict)


@dataclass(slots=True)
class ChatReply:
    """A gateway chat completion as scorers and targets see it."""

    text: str
    request_id: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_pico: int | None = None
    cached: bool = False  # answered from the eval cache: no call, no spend


ChatFn = Callable[[str, list[dict[str, Any]], dict[str, Any]], Awaitable[ChatReply]]


@dataclass(slots=True)
class ScoreContext:
    """What a scorer may use besides the case and the output.

    ``chat(model, messages, params)`` calls the gateway (judges); ``cache_get``
    and ``cache_put`` reuse earlier judge answers across runs, keyed with
    ``model_fingerprint(model)`` so a changed gateway config is a cache miss.
    """

    chat: ChatFn | None = None
    cache_get: Callable[[str], Awaitable[dict[str, Any] | None]] | None = None
    cache_put: Callable[[str, dict[str, Any]], None] | None = None
    # What a model alias resolves to (gateway config), so cached answers never outlive it.
    model_fingerprint: Callable[[str], str] | None = None


C = TypeVar("C", bound=ScorerConfig)


class Scorer(Generic[C]):
    """Base class: subclasses set ``config_type`` and implement :meth:`evaluate`."""

    config_type: ClassVar[type[ScorerConfig]] = ScorerConfig
    needs_gateway: ClassVar[bool] = False

    def __init__(self, config: C, base_dir: Path) -> None:
        self.config = config
        self.base_dir = base_dir
        self.name = config.name or config.type

    def applies(self, case: Case) -> bool:
        for path, wanted in self.config.when.items():
            value = case.field(path)
            if value not in (wanted if isinstance(wanted, list) else [wanted]):
                return False
        return True

    async def evaluate(self, case: Case, output: str, ctx: ScoreContext) -> Verdict:
        raise NotImplementedError

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this scorer's behaviour (for judge caches and reports)."""
        return msgspec.to_builtins(self.config)  # type: ignore[no-any-return]

    # -- verdict helpers ----------------------------------------------------------------

    def verdict(
        self,
        passed: bool,
        *,
        value: float | None = None,
        explanation: str = "",
        expected: str | None = None,
        label: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Verdict:
        return Verdict(
            scorer=self.name,
            value=float(passed) if value is None else value,
            passed=passed,
            label=label or ("pass" if passed else "fail"),
            explanation=explanation,
            expected=expected,
            detail=detail or {},
        )

    def skip(self, reason: str) -> Verdict:
        return Verdict(scorer=self.name, skipped=reason)

    def error(self, message: str, detail: dict[str, Any] | None = None) -> Verdict:
        return Verdict(scorer=self.name, error=message, detail=detail or {})


def register_scorer(type_name: str, cls: type[Scorer[Any]]) -> None:
    """Register a scorer class from Python (tests, notebooks, embedding apps)."""
    _REGISTERED[type_name] = cls


def scorer_types() -> dict[str, str]:
    """Every known type: built-ins, then entry points (a built-in name cannot be taken)."""
    types = dict(_BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        types.setdefault(ep.name, ep.value)
    return types


def scorer_class(type_name: str) -> type[Scorer[Any]]:
    if type_name in _REGISTERED:
        return _REGISTERED[type_name]
    types = scorer_types()
    if type_name not in types:
        known = ", ".join(sorted({*types, *_REGISTERED}))
        raise SuiteError(f"unknown scorer type {type_name!r} (known: {known})")
    module_name, _, attr = types[type_name].partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise SuiteError(
            f"scorer type {type_name!r}: cannot load {types[type_name]}: {exc}"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Scorer)):
        raise SuiteError(f"scorer type {type_name!r}: {types[type_name]} is not a Scorer class")
    return cls


def build_scorer(raw: Any, base_dir: Path, where: str) -> Scorer[Any]:
    """Validate one ``scorers:`` entry into a scorer instance."""
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise SuiteError(f"{where}: expected a mapping with a `type`, e.g. {{type: exact}}")
    try:
        cls = scorer_class(raw["type"])
    except SuiteError as exc:
        raise SuiteError(f"{where}: {exc.message}") from None
    try:
        config = msgspec.convert(raw, cls.config_type, strict=False)
    except msgspec.ValidationError as exc:
        raise SuiteError(f"{where}: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise SuiteError(f"{where}: {exc}") from None
    try:
        return cls(config, base_dir)
    except SuiteError as exc:
        raise SuiteError(f"{where}: {exc.message}") from None
    except (ValueError, TypeError) as exc:
        raise SuiteError(f"{where}: {exc}") from None
