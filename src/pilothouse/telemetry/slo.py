"""In-gateway SLO tracking: SLI, error budget left and burn rates over any window.

Why in the gateway and not only in Prometheus: ``pilothouse slo status`` and
the burn-rate webhook must work on a laptop with no Prometheus running. The
generated Prometheus rules (``rules.py``) compute the same numbers from the
same definitions for those who do run it.

Events are counted per minute in cumulative arrays sized to the longest window
in use, so recording is O(1) and any window's sums are two array reads: the
evaluator can run every few seconds even for 30-day windows without stalling
the event loop. Every method takes explicit timestamps (or reads the injected
clock), so tests script hours of traffic without sleeping.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Iterable, Sequence

import msgspec

from pilothouse.telemetry.config import DEFAULT_BURN_ALERTS, BurnAlertConfig, SLOConfig
from pilothouse.telemetry.config import parse_duration as _seconds


def is_good_event(slo: SLOConfig, status: int, latency_s: float) -> bool:
    """The single definition of a good event, mirrored by the Prometheus rules."""
    if slo.sli == "availability":
        return status < 500
    assert slo.latency_threshold_s is not None  # guaranteed by SLOConfig
    return latency_s <= slo.latency_threshold_s


def latency_thresholds(slos: Iterable[SLOConfig]) -> tuple[float, ...]:
    """Thresholds to pass as ``GatewayMetrics(extra_latency_buckets=...)``."""
    return tuple(sorted({s.latency_threshold_s for s in slos if s.latency_threshold_s is not None}))


class _CumulativeCounts:
    """Running good/total counts at the end of each minute, in a ring.

    ``C(m)`` is the count of events in minutes <= m, so minutes ``a..b`` hold
    ``C(b) - C(a - 1)``. Events are attributed to
    ``max(event minute, newest minute seen)``: the pipeline records at
    completion time, so only clock steps backwards are affected, and they
    cannot corrupt the monotonic arrays.
    """

    __slots__ = ("_first", "_good", "_last", "_size", "_total")

    def __init__(self, minutes: int) -> None:
        self._size = minutes + 2
        self._good = array("Q", bytes(8 * self._size))
        self._total = array("Q", bytes(8 * self._size))
        self._first: int | None = None
        self._last = 0

    def add(self, minute: int, good: bool) -> None:
        size = self._size
        if self._first is None:
            self._first = self._last = minute
        elif minute > self._last:
            # Carry the running totals forward over the idle minutes (at most one ring).
            good_now, total_now = self._good[self._last % size], self._total[self._last % size]
            for m in range(max(self._last + 1, minute - size + 1), minute + 1):
                self._good[m % size] = good_now
                self._total[m % size] = total_now
            self._last = minute
        slot = self._last % size
        self._total[slot] += 1
        if good:
            self._good[slot] += 1

    def _at(self, minute: int) -> tuple[int, int]:
        if self._first is None or minute < self._first:
            return 0, 0
        minute = max(min(minute, self._last), self._last - self._size + 1)
        slot = minute % self._size
        return self._good[slot], self._total[slot]

    def between(self, first_minute: int, last_minute: int) -> tuple[int, int]:
        """(good, total) counted in minutes ``first_minute`` to ``last_minute`` inclusive."""
        good_end, total_end = self._at(last_minute)
        good_start, total_start = self._at(first_minute - 1)
        return good_end - good_start, total_end - total_start


class WindowBurn(msgspec.Struct, frozen=True, kw_only=True):
    """One burn-rate alert rule evaluated for one SLO at one instant."""

    slo: str
    alias: str
    sli: str
    rule: str
    severity: str
    threshold: float
    long_window: str
    short_window: str
    long_burn: float
    short_burn: float
    firing: bool


class SLOStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What ``pilothouse slo status`` shows for one SLO."""

    name: str
    alias: str
    sli: str
    objective: float
    window: str
    good: int
    total: int
    sli_value: float | None
    error_budget_remaining: float
    burn_rates: dict[str, float]


class SLOTracker:
    """Counts good/total events per SLO and answers SLI, budget and burn questions."""

    def __init__(
        self,
        slos: Sequence[SLOConfig],
        alerts: Sequence[BurnAlertConfig] = DEFAULT_BURN_ALERTS,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.slos = tuple(slos)
        self.alerts = tuple(alerts)
        self._clock = clock
        longest_alert = max((_seconds(a.long_window) for a in self.alerts), default=60)
        self._counts: dict[str, _CumulativeCounts] = {}
        self._by_alias: dict[str, list[tuple[SLOConfig, _CumulativeCounts]]] = {}
        for slo in self.slos:
            minutes = max(_seconds(slo.window), longest_alert) // 60
            counts = self._counts[slo.name] = _CumulativeCounts(minutes)
            self._by_alias.setdefault(slo.alias, []).append((slo, counts))
        self._by_name = {slo.name: slo for slo in self.slos}

    def record(self, alias: str, status: int, latency_s: float, at: float | None = None) -> None:
        """Count one finished request for every SLO on ``alias`` (no-op for others)."""
        targets = self._by_alias.get(alias)
        if not targets:
            return
        minute = int((self._clock() if at is None else at) // 60)
        for slo, counts in targets:
            counts.add(minute, is_good_event(slo, status, latency_s))

    def counts(self, slo: str, window: str, now: float | None = None) -> tuple[int, int]:
        """(good, total) events of ``slo`` in ``[now - window, now]`` (``window`` e.g. ``1h``).

        Minutes are included when they start inside the window, so at a minute
        boundary the window covers exactly its length, like Prometheus' range.
        """
        now = self._clock() if now is None else now
        first = -int(-(now - _seconds(window)) // 60)  # ceil
        return self._counts[slo].between(first, int(now // 60))

    def burn_rate(self, slo: str, window: str, now: float | None = None) -> float:
        """Error rate over ``window`` divided by the error budget rate; 0 with no traffic."""
        good, total = self.counts(slo, window, now)
        if total == 0:
            return 0.0
        return ((total - good) / total) / (1.0 - self._by_name[slo].objective)

    def status(self, now: float | None = None) -> list[SLOStatus]:
        """SLI, error budget left over the SLO window, and burn rate per alert window."""
        now = self._clock() if now is None else now
        windows = sorted(
            {w for a in self.alerts for w in (a.long_window, a.short_window)}, key=_seconds
        )
        result = []
        for slo in self.slos:
            good, total = self.counts(slo.name, slo.window, now)
            result.append(
                SLOStatus(
                    name=slo.name,
                    alias=slo.alias,
                    sli=slo.sli,
                    objective=slo.objective,
                    window=slo.window,
                    good=good,
                    total=total,
                    sli_value=good / total if total else None,
                    error_budget_remaining=1.0 - self.burn_rate(slo.name, slo.window, now),
                    burn_rates={w: self.burn_rate(slo.name, w, now) for w in windows},
                )
            )
        return result

    def evaluate(self, now: float | None = None) -> list[WindowBurn]:
        """Every (SLO, alert rule) pair: both burn rates and whether the rule fires.

        A rule fires when the burn rate is strictly above its threshold over
        both the long and the short window, exactly like the Prometheus rule.
        """
        now = self._clock() if now is None else now
        result = []
        for slo in self.slos:
            for alert in self.alerts:
                long_burn = self.burn_rate(slo.name, alert.long_window, now)
                short_burn = self.burn_rate(slo.name, alert.short_window, now)
                result.append(
                    WindowBurn(
                        slo=slo.name,
                        alias=slo.alias,
                        sli=slo.sli,
                        rule=alert.name,
                        severity=alert.severity,
                        threshold=alert.burn_rate,
                        long_window=alert.long_window,
                        short_window=alert.short_window,
                        long_burn=long_burn,
                        short_burn=short_burn,
                        firing=long_burn > alert.burn_rate and short_burn > alert.burn_rate,
                    )
                )
        return result
