"""The ``rollouts:`` config section: default guards, samples, alpha and fallback.

Every field of ``rollouts.defaults`` can also be given per rollout in the
``POST /admin/rollouts`` body; :func:`merge_options` applies the same checks
to both, so a bad guard in a request is the same precise 400 a bad guard in
the file is at start-up.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

Alpha = Annotated[float, msgspec.Meta(gt=0.0, lt=0.5)]
_METRIC = re.compile(
    r"^(error_rate|latency_p95_s|cost_per_request_usd|online_eval\.[A-Za-z0-9_.:-]+)$"
)
#: Metrics where larger is worse (max_increase*) or better (max_drop).
INCREASE_METRICS = ("error_rate", "latency_p95_s", "cost_per_request_usd")


class _Frozen(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Immutable and strict about keys, like every config section."""


class GuardConfig(_Frozen, frozen=True):
    """One guard: a metric and the largest tolerated change of the candidate vs the baseline.

    ``max_increase`` is absolute (0.01 = one percentage point of error rate),
    ``max_increase_ratio`` relative (0.20 = 20 % slower or dearer),
    ``max_drop`` an absolute drop of a higher-is-better score (online evals).
    """

    metric: str
    max_increase: Annotated[float, msgspec.Meta(ge=0.0)] | None = None
    max_increase_ratio: Annotated[float, msgspec.Meta(ge=0.0)] | None = None
    max_drop: Annotated[float, msgspec.Meta(ge=0.0)] | None = None

    def __post_init__(self) -> None:
        if not _METRIC.match(self.metric):
            raise ValueError(
                f"guard metric {self.metric!r} is not one of error_rate, latency_p95_s, "
                "cost_per_request_usd, online_eval.<scorer>"
            )
        given = [
            n
            for n in ("max_increase", "max_increase_ratio", "max_drop")
            if getattr(self, n) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                f"guard {self.metric!r} needs exactly one of max_increase, "
                f"max_increase_ratio, max_drop (got {', '.join(given) or 'none'})"
            )
        online = self.metric.startswith("online_eval.")
        if online and self.max_drop is None:
            raise ValueError(f"guard {self.metric!r}: online eval scores take max_drop")
        if not online and self.max_drop is not None:
            raise ValueError(f"guard {self.metric!r}: max_drop applies to online_eval.* only")
        if self.metric == "error_rate" and self.max_increase_ratio is not None:
            raise ValueError("guard 'error_rate' takes max_increase (absolute), not a ratio")

    @property
    def name(self) -> str:
        return self.metric


def _default_guards() -> list[GuardConfig]:
    return [
        GuardConfig(metric="error_rate", max_increase=0.01),
        GuardConfig(metric="latency_p95_s", max_increase_ratio=0.20),
    ]


class RolloutDefaults(_Frozen, frozen=True):
    guards: list[GuardConfig] = msgspec.field(default_factory=_default_guards)
    min_samples: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 200
    alpha: Alpha = 0.05
    on_candidate_error: Literal["baseline", "fail"] = "baseline"

    def __post_init__(self) -> None:
        metrics = [g.metric for g in self.guards]
        if len(metrics) != len(set(metrics)):
            raise ValueError("each guard metric may appear once")


class RolloutsConfig(_Frozen, frozen=True):
    defaults: RolloutDefaults = msgspec.field(default_factory=RolloutDefaults)
    # How often each replica flushes its arm counts and evaluates the guards.
    evaluate_interval_s: Annotated[float, msgspec.Meta(gt=0.0, le=60.0)] = 0.25
    # One point of each guard's statistic per bucket this long, for its trend over time.
    history_interval_s: Annotated[float, msgspec.Meta(gt=0.0)] = 10.0


OPTION_KEYS = ("guards", "min_samples", "alpha", "on_candidate_error")


def merge_options(defaults: RolloutDefaults, body: dict[str, Any]) -> RolloutDefaults:
    """The defaults with any of ``OPTION_KEYS`` in ``body`` applied (validated the same way)."""
    raw = msgspec.to_builtins(defaults)
    raw.update({k: body[k] for k in OPTION_KEYS if k in body})
    return msgspec.convert(raw, RolloutDefaults)
