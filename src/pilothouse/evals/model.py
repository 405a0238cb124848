"""The records an evaluation produces: cases, verdicts, samples and runs.

They are msgspec structs so one definition serves the store (JSON columns),
the JSON report and baselines read back from either: a run written by one
version can be compared with a run loaded from a file.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

Messages = list[dict[str, Any]]


class Case(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One dataset row. ``input`` is a prompt string or a list of chat messages."""

    id: str
    input: str | Messages
    expected: Any = None
    context: str | list[str] | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)

    def field(self, path: str) -> Any:
        """Value at a dotted path such as ``metadata.topic`` (``None`` when absent)."""
        head, _, rest = path.partition(".")
        value: Any = getattr(self, head, None) if head in _CASE_FIELDS else None
        for part in rest.split(".") if rest else ():
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def prompt_text(self) -> str:
        """The input as text (the last user message for chat inputs)."""
        if isinstance(self.input, str):
            return self.input
        for message in reversed(self.input):
            if message.get("role") == "user" and isinstance(message.get("content"), str):
                return str(message["content"])
        return ""


_CASE_FIELDS = frozenset(("id", "input", "expected", "context", "metadata"))


class Verdict(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What one scorer said about one output.

    Exactly one of three shapes: a score (``value``/``passed``), an ``error``
    (the scorer could not decide: excluded from means, counted and reported),
    or ``skipped`` (the scorer does not apply to this case, e.g. no expected).
    """

    scorer: str
    value: float | None = None
    passed: bool | None = None
    label: str | None = None
    explanation: str = ""
    expected: str | None = None
    error: str | None = None
    skipped: str | None = None
    detail: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def scored(self) -> bool:
        return self.error is None and self.skipped is None


class Sample(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One case run once (``repeat`` numbers the runs of a case from 0)."""

    case_id: str
    repeat: int = 0
    output: str | None = None
    error: str | None = None
    request_ids: list[str] = msgspec.field(default_factory=list)
    trace_id: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_pico: int | None = None
    scoring_cost_pico: int = 0
    latency_ms: float = 0.0
    cached: bool = False
    verdicts: list[Verdict] = msgspec.field(default_factory=list)
    events: list[dict[str, Any]] = msgspec.field(default_factory=list)
    finished_at: datetime | None = None

    def verdict(self, scorer: str) -> Verdict | None:
        for verdict in self.verdicts:
            if verdict.scorer == scorer:
                return verdict
        return None


class RunInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Everything needed to understand and reproduce a run, minus its samples."""

    id: str
    suite: str
    suite_hash: str = ""
    suite_path: str = ""
    target: dict[str, Any] = msgspec.field(default_factory=dict)
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    scorers: list[str] = msgspec.field(default_factory=list)
    slices: list[str] = msgspec.field(default_factory=list)
    repeats: int = 1
    n_cases: int = 0
    bootstrap: int = 2000  # resamples and seed: a report regenerated later shows the same CIs
    seed: int = 0
    status: str = "running"
    gateway: str = ""
    version: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    baseline_id: str | None = None
    case_order: list[str] = msgspec.field(default_factory=list)  # dataset order, for reports
    summary: dict[str, Any] = msgspec.field(default_factory=dict)


class RunRecord(msgspec.Struct, kw_only=True):
    """A run with its cases and samples: the unit analysis, reports and baselines use."""

    info: RunInfo
    cases: dict[str, Case]
    samples: list[Sample]

    def by_case(self) -> dict[str, list[Sample]]:
        out: dict[str, list[Sample]] = {case_id: [] for case_id in self.cases}
        for sample in self.samples:
            out.setdefault(sample.case_id, []).append(sample)
        for samples in out.values():
            samples.sort(key=lambda s: s.repeat)
        return out
