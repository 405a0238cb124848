"""Config shapes for SLOs, burn-rate alerts and the alert webhook.

They live here rather than in ``config/schema.py`` so the telemetry package
can be built and tested on its own; the schema references them. Same rules as
every config section: frozen, unknown keys rejected, checked at start-up.

Durations are written like Prometheus ones (``5m``, ``1h``, ``30d``) because
the same values end up in generated Prometheus rules; windows are whole
minutes because the in-gateway evaluator counts events per minute.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

import msgspec

Duration = Annotated[str, msgspec.Meta(pattern=r"^[1-9][0-9]*[smhdw]$")]
Objective = Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)]
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]

_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^([1-9][0-9]*)([smhdw])$")


def parse_duration(text: str) -> int:
    """Seconds in a Prometheus-style duration such as ``30m``."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"invalid duration {text!r}; expected e.g. 5m, 1h, 30d")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def _whole_minutes(field: str, text: str) -> None:
    if parse_duration(text) % 60:
        raise ValueError(f"{field} {text!r} must be a whole number of minutes")


class _Frozen(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Immutable and strict about keys, like every config section."""


class SLOConfig(_Frozen, frozen=True):
    """One objective for one model alias.

    ``availability``: good = the gateway did not answer 5xx (client errors and
    rate limits are the caller's, not ours). ``latency``: good = whole request
    took at most ``latency_threshold_s``; the threshold must be a histogram
    bucket bound, which :func:`slo.latency_thresholds` feeds to the metrics.
    """

    name: Name
    alias: str
    sli: Literal["availability", "latency"] = "availability"
    objective: Objective = 0.995
    window: Duration = "30d"
    latency_threshold_s: Annotated[float, msgspec.Meta(gt=0.0)] | None = None

    def __post_init__(self) -> None:
        _whole_minutes("window", self.window)
        if self.sli == "latency" and self.latency_threshold_s is None:
            raise ValueError(f"SLO {self.name!r}: sli 'latency' needs latency_threshold_s")
        if self.sli == "availability" and self.latency_threshold_s is not None:
            raise ValueError(f"SLO {self.name!r}: latency_threshold_s only applies to latency")


class BurnAlertConfig(_Frozen, frozen=True):
    """Fire when the burn rate exceeds ``burn_rate`` over both windows.

    The long window proves the burn is significant, the short one that it is
    still happening (so the alert resolves soon after the problem stops).
    """

    name: Name
    severity: Literal["page", "ticket"]
    burn_rate: Annotated[float, msgspec.Meta(gt=0.0)]
    long_window: Duration
    short_window: Duration

    def __post_init__(self) -> None:
        _whole_minutes("long_window", self.long_window)
        _whole_minutes("short_window", self.short_window)
        if parse_duration(self.short_window) >= parse_duration(self.long_window):
            raise ValueError(f"burn alert {self.name!r}: short_window must be < long_window")


#: The Google SRE workbook's multi-window, multi-burn-rate defaults for a 30 d SLO.
DEFAULT_BURN_ALERTS: Final[tuple[BurnAlertConfig, ...]] = (
    BurnAlertConfig(
        name="page_fast", severity="page", burn_rate=14.4, long_window="1h", short_window="5m"
    ),
    BurnAlertConfig(
        name="page_slow", severity="page", burn_rate=6.0, long_window="6h", short_window="30m"
    ),
    BurnAlertConfig(
        name="ticket", severity="ticket", burn_rate=1.0, long_window="3d", short_window="6h"
    ),
)


class WebhookConfig(_Frozen, frozen=True):
    """Where alerts are POSTed (JSON), and how hard delivery tries.

    The schema may wrap ``url`` in its ``Secret`` type: chat webhooks often
    carry a token in the URL.
    """

    url: str
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    timeout_s: Annotated[float, msgspec.Meta(gt=0.0)] = 5.0
    max_attempts: Annotated[int, msgspec.Meta(ge=1)] = 5
    backoff_base_s: Annotated[float, msgspec.Meta(ge=0.0)] = 1.0
    backoff_max_s: Annotated[float, msgspec.Meta(ge=0.0)] = 60.0
    queue_size: Annotated[int, msgspec.Meta(ge=1)] = 1000


class SLOSettings(_Frozen, frozen=True):
    """The ``slo:`` config section."""

    objectives: list[SLOConfig] = msgspec.field(default_factory=list)
    alerts: list[BurnAlertConfig] = msgspec.field(default_factory=lambda: list(DEFAULT_BURN_ALERTS))
    evaluate_interval_s: Annotated[float, msgspec.Meta(gt=0.0)] = 30.0
    webhook: WebhookConfig | None = None

    def __post_init__(self) -> None:
        for kind, names in (
            ("SLO", [o.name for o in self.objectives]),
            ("burn alert", [a.name for a in self.alerts]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"duplicate {kind} names: {', '.join(dupes)}")
