"""Suite files: YAML → a validated :class:`Suite`, failing early with file and key path.

Everything that can be checked before the first model call is checked here
(dataset rows, scorer options, regexes, schemas, python refs, gate metrics),
so a typo costs a second, not a half-finished run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from pilothouse.evals.dataset import cases_from_rows, load_dataset
from pilothouse.evals.errors import SuiteError
from pilothouse.evals.model import Case
from pilothouse.evals.scorers.base import Scorer, build_scorer
from pilothouse.evals.targets import TargetSpec, parse_target

RUN_METRICS = (
    "run.error_rate",
    "run.cost_usd",
    "run.latency_p50_ms",
    "run.latency_p95_ms",
    # Performance budgets in release gates: cost per answered case, latency in seconds.
    "cost.usd_per_case",
    "latency.p50_s",
    "latency.p95_s",
)
SCORER_METRICS = ("pass_rate", "accuracy", "mean")
_PATH_RE = re.compile(r" - at `\$(?P<path>[^`]*)`$")


class GateSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``min``/``max`` bound the metric; ``max_drop`` with ``vs: baseline`` bounds a
    significant drop (see :mod:`pilothouse.evals.gates`)."""

    metric: str
    min: float | None = None
    max: float | None = None
    max_drop: float | None = None
    vs: Literal["baseline"] | None = None
    slice: str | None = None
    alpha: float = 0.05

    def __post_init__(self) -> None:
        bounds = [k for k in ("min", "max", "max_drop") if getattr(self, k) is not None]
        if len(bounds) != 1:
            raise ValueError("a gate needs exactly one of `min`, `max` or `max_drop`")
        if (self.max_drop is not None) != (self.vs == "baseline"):
            raise ValueError("`max_drop` goes with `vs: baseline` (and only with it)")
        if self.slice is not None and "=" not in self.slice:
            raise ValueError("`slice` must look like 'metadata.topic=geography'")
        if not 0 < self.alpha < 1:
            raise ValueError("`alpha` must be between 0 and 1")

    def describe(self) -> str:
        where = f" [{self.slice}]" if self.slice else ""
        if self.min is not None:
            return f"{self.metric}{where} >= {self.min:g}"
        if self.max is not None:
            return f"{self.metric}{where} <= {self.max:g}"
        return f"{self.metric}{where} drops <= {self.max_drop:g} vs baseline"


class ReviewSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Which cases go to the human review queue after a run."""

    borderline: bool = True
    disagreement: bool = True
    errors: bool = True
    sample_rate: float = 0.0


class SuiteSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: str
    target: dict[str, Any]
    dataset: str | list[dict[str, Any]]
    scorers: list[dict[str, Any]]
    description: str = ""
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    slices: list[str] = msgspec.field(default_factory=list)
    repeats: int = 1
    concurrency: int = 8
    gates: list[GateSpec] = msgspec.field(default_factory=list)
    max_error_rate: float = 0.0
    seed: int = 0
    bootstrap: int = 2000
    review: ReviewSpec = msgspec.field(default_factory=ReviewSpec)


@dataclass(frozen=True)
class Suite:
    spec: SuiteSpec
    path: Path
    cases: list[Case]
    scorers: list[Scorer[Any]]
    target: TargetSpec
    hash: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def metric_names(self) -> list[str]:
        names = [f"{s.name}.{m}" for s in self.scorers for m in SCORER_METRICS]
        return [*names, *RUN_METRICS]

    @property
    def needs_gateway(self) -> bool:
        return self.target.needs_gateway or any(s.needs_gateway for s in self.scorers)


def _where(exc: msgspec.ValidationError) -> tuple[str, str]:
    text = str(exc)
    match = _PATH_RE.search(text)
    if not match:
        return "<root>", text
    return match.group("path").lstrip(".") or "<root>", text[: match.start()]


def load_suite(path: str | Path, *, env: Mapping[str, str] | None = None) -> Suite:
    """Read, validate and resolve a suite file (dataset, scorers, target, gates).

    ``env`` resolves ``env:NAME`` secrets in HTTP target headers; the CLI passes
    the process environment, library callers pass what they choose.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(f"{file}: cannot read suite: {exc.strerror or exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SuiteError(f"{file}: invalid YAML: {exc}") from None
    return parse_suite(raw, file, text.encode(), env=env)


def parse_suite(
    raw: Any, file: Path, source: bytes = b"", *, env: Mapping[str, str] | None = None
) -> Suite:
    if not isinstance(raw, dict):
        raise SuiteError(f"{file}: expected a mapping with name, target, dataset and scorers")
    try:
        spec = msgspec.convert(raw, SuiteSpec, strict=False)
    except msgspec.ValidationError as exc:
        where, why = _where(exc)
        raise SuiteError(f"{file}: {where}: {why}") from None
    _check_numbers(spec, file)
    base = file.parent
    digest = hashlib.sha256(source)
    if isinstance(spec.dataset, str):
        data_path = base / spec.dataset
        if not data_path.is_file():
            raise SuiteError(f"{file}: dataset: cannot read dataset {data_path}: no such file")
        cases = load_dataset(data_path)
        digest.update(data_path.read_bytes())
    else:
        cases = cases_from_rows(enumerate(spec.dataset, start=1), f"{file}: dataset")
    scorers = [build_scorer(s, base, f"{file}: scorers[{i}]") for i, s in enumerate(spec.scorers)]
    _check_scorer_names(scorers, file)
    target = parse_target(spec.target, base, f"{file}: target", dict(env or {}))
    suite = Suite(spec, file, cases, scorers, target, digest.hexdigest())
    _check_gates(suite)
    return suite


def _check_numbers(spec: SuiteSpec, file: Path) -> None:
    checks = (
        ("repeats", spec.repeats >= 1, "must be >= 1"),
        ("concurrency", spec.concurrency >= 1, "must be >= 1"),
        ("bootstrap", spec.bootstrap >= 100, "must be >= 100 resamples"),
        ("max_error_rate", 0 <= spec.max_error_rate <= 1, "must be between 0 and 1"),
        ("review.sample_rate", 0 <= spec.review.sample_rate <= 1, "must be between 0 and 1"),
        ("scorers", bool(spec.scorers), "needs at least one scorer"),
    )
    for key, ok, why in checks:
        if not ok:
            raise SuiteError(f"{file}: {key}: {why}")


def _check_scorer_names(scorers: list[Scorer[Any]], file: Path) -> None:
    seen: set[str] = set()
    for i, scorer in enumerate(scorers):
        if scorer.name in seen:
            raise SuiteError(
                f"{file}: scorers[{i}]: a second {scorer.name!r} scorer needs its own `name`"
            )
        if scorer.name == "run" or "." in scorer.name:
            raise SuiteError(f"{file}: scorers[{i}]: name {scorer.name!r} is reserved or has a dot")
        seen.add(scorer.name)


def _check_gates(suite: Suite) -> None:
    known = suite.metric_names()
    for i, gate in enumerate(suite.spec.gates):
        if gate.metric not in known:
            raise SuiteError(
                f"{suite.path}: gates[{i}].metric: unknown metric {gate.metric!r} "
                f"(known: {', '.join(known)})"
            )
        if gate.metric in RUN_METRICS and (gate.slice or gate.vs):
            raise SuiteError(f"{suite.path}: gates[{i}]: run metrics take `min`/`max` only")
