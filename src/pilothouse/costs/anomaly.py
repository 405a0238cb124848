"""Spend anomaly detection per key and per team, from the usage ledger.

Method (the full derivation is in docs/costs.md): the spend of the last hour
(``[now - 1h, now)``) is compared with the spend in the same hour of each of
the previous ``lookback_days`` days. Using the same time of day keeps the
daily rhythm of LLM traffic (busy office hours, quiet nights, nightly batch
jobs) out of the baseline; mixing all hours would make every morning look
like a spike. The baseline is the median of those samples and its spread the
median absolute deviation (MAD), scaled by 1.4826 to estimate a standard
deviation; both ignore a few past spikes, which a mean and standard
deviation would not. The robust z-score is::

    z = (observed - median) / max(1.4826 * MAD, min_spend / threshold)

The floor on the scale keeps flat histories (MAD = 0) finite, and because
``z >= threshold`` then implies ``observed - median >= min_spend``, an hour
that rose by less than ``min_spend`` can never alert, however quiet the
history. An alert fires when ``z >= threshold`` and resolves at the first
evaluation where that no longer holds.

Baseline days before a subject's first recorded spend in the lookback range
are skipped (a key created yesterday has no "zero" history), and subjects
with fewer than ``min_baseline_days`` samples are not judged at all.

All money arithmetic is on integer pico-USD and exact fractions; only the
z-score and the alert's numeric values are floats.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pilothouse.costs.config import AnomalyConfig, exact
from pilothouse.costs.report import team_expr
from pilothouse.limits.money import PICO_PER_USD, pico_to_str, usd_to_pico
from pilothouse.store.tables import api_keys as k
from pilothouse.store.tables import usage_records as u
from pilothouse.telemetry.alerts import AlertManager

log = logging.getLogger("pilothouse.costs.anomaly")

KIND = "spend_anomaly"
MAD_TO_SIGMA = Fraction(14826, 10000)  # 1 / Phi^-1(3/4): MAD -> sigma for normal data
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

Subject = tuple[str, str]  # (scope, id): ("key", "key_01..") or ("team", "search")


def median(values: Sequence[int | Fraction]) -> Fraction:
    """Exact median (the mean of the middle pair for an even count)."""
    if not values:
        raise ValueError("median of no values")
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return Fraction(ordered[mid])
    return (Fraction(ordered[mid - 1]) + Fraction(ordered[mid])) / 2


@dataclass(frozen=True, slots=True)
class Assessment:
    """One subject's verdict at one evaluation, with every number that produced it."""

    scope: str
    subject: str
    observed_pico: int
    median_pico: Fraction
    mad_pico: Fraction
    scale_pico: Fraction
    z: float
    samples: int
    anomalous: bool


def assess(
    scope: str, subject: str, observed: int, history: Sequence[int], config: AnomalyConfig
) -> Assessment:
    """Judge ``observed`` (pico-USD in the last hour) against same-hour ``history``."""
    med = median(history)
    mad = median([abs(x - med) for x in history])
    min_spend = usd_to_pico(config.min_spend_usd)
    threshold = exact(config.threshold)
    scale = max(MAD_TO_SIGMA * mad, Fraction(min_spend) / threshold)
    z = (observed - med) / scale
    return Assessment(
        scope=scope,
        subject=subject,
        observed_pico=observed,
        median_pico=med,
        mad_pico=mad,
        scale_pico=scale,
        z=float(z),
        samples=len(history),
        anomalous=z >= threshold,
    )


def windows(now: datetime, lookback_days: int) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` of the last hour (index 0) and the same hour on each earlier day."""
    now = now.astimezone(UTC)
    return [(now - d * DAY - HOUR, now - d * DAY) for d in range(lookback_days + 1)]


def baseline_of(spend: Sequence[dict[Subject, int]], subject: Subject) -> list[int]:
    """Same-hour history of one subject, from its first appearance onwards (oldest first)."""
    seen = [d for d in range(1, len(spend)) if subject in spend[d]]
    if not seen:
        return []
    return [spend[d].get(subject, 0) for d in range(max(seen), 0, -1)]


async def _window_spend(
    conn: AsyncConnection, start: datetime, end: datetime, scopes: Sequence[str]
) -> tuple[dict[Subject, int], dict[str, str]]:
    """Spend per key and per team in one window (one grouped query), plus key names."""
    team = team_expr().label("team")
    query = (
        select(u.c.key_id, k.c.name, team, func.sum(u.c.cost_pico).label("cost"))
        .select_from(u.outerjoin(k, k.c.id == u.c.key_id))
        .where(u.c.created_at >= start, u.c.created_at < end)
        .group_by(u.c.key_id, k.c.name, team)
    )
    spend: dict[Subject, int] = {}
    names: dict[str, str] = {}
    for row in await conn.execute(query):
        cost = int(row.cost or 0)
        if "key" in scopes and row.key_id is not None:
            spend[("key", row.key_id)] = spend.get(("key", row.key_id), 0) + cost
            names[row.key_id] = row.name or row.key_id
        if "team" in scopes and row.team is not None:
            subject = ("team", str(row.team))
            spend[subject] = spend.get(subject, 0) + cost
    return spend, names


def _usd(pico: int | Fraction) -> str:
    """A pico amount (possibly a half pico from a median) as a decimal USD string."""
    if isinstance(pico, int):
        return pico_to_str(pico)
    return pico_to_str(round(pico))


def _values(a: Assessment, config: AnomalyConfig) -> dict[str, float]:
    per_usd = Fraction(PICO_PER_USD)
    return {
        "observed_usd": float(Fraction(a.observed_pico) / per_usd),
        "baseline_median_usd": float(a.median_pico / per_usd),
        "baseline_mad_usd": float(a.mad_pico / per_usd),
        "scale_usd": float(a.scale_pico / per_usd),
        "robust_z": round(a.z, 3),
        "threshold": config.threshold,
        "baseline_days": float(a.samples),
        "min_spend_usd": float(Decimal(config.min_spend_usd)),
    }


def _summary(a: Assessment, label: str, end: datetime, config: AnomalyConfig) -> str:
    numbers = (
        f"{_usd(a.observed_pico)} USD in the hour to {end:%Y-%m-%d %H:%M} UTC vs a median of "
        f"{_usd(a.median_pico)} USD (MAD {_usd(a.mad_pico)}) at this hour over the previous "
        f"{a.samples} days; robust z {a.z:.1f}, threshold {config.threshold:g}"
    )
    if a.anomalous:
        return f"Spend anomaly for {label}: {numbers}"
    return f"Spend for {label} is back to normal: {numbers}"


class SpendAnomalyDetector:
    """Evaluates every key's and team's last-hour spend and reports through ``alerts``.

    Stateless apart from which subjects are firing (to resolve those that
    disappear); ``now`` is always passed in, so tests script time exactly.
    """

    def __init__(self, engine: AsyncEngine, config: AnomalyConfig, alerts: AlertManager) -> None:
        self.engine = engine
        self.config = config
        self.alerts = alerts
        self._firing: set[Subject] = set()

    async def _spend(
        self, now: datetime
    ) -> tuple[list[dict[Subject, int]], dict[str, str], datetime]:
        spans = windows(now, self.config.lookback_days)
        spend: list[dict[Subject, int]] = []
        names: dict[str, str] = {}
        async with self.engine.connect() as conn:
            for start, end in spans:
                window, window_names = await _window_spend(conn, start, end, self.config.scopes)
                spend.append(window)
                names.update(window_names)
        return spend, names, spans[0][1]

    async def evaluate(self, now: datetime) -> list[Assessment]:
        """Judge every subject with enough history at ``now``; send alert state changes."""
        if not self.config.enabled:
            return []
        spend, names, end = await self._spend(now)
        subjects = set().union(*spend)
        results: list[Assessment] = []
        for scope, subject in sorted(subjects):
            history = baseline_of(spend, (scope, subject))
            if len(history) < self.config.min_baseline_days:
                continue
            observed = spend[0].get((scope, subject), 0)
            results.append(assess(scope, subject, observed, history, self.config))
        judged = {(a.scope, a.subject) for a in results}
        for a in results:
            self._report(a, names, end)
        for scope, subject in sorted(self._firing - judged):
            self._resolve_unjudged(scope, subject, end)
        return results

    def _labels(self, scope: str, subject: str) -> dict[str, str]:
        return {"scope": scope, "key_id" if scope == "key" else "team": subject}

    def _report(self, a: Assessment, names: dict[str, str], end: datetime) -> None:
        label = f"team {a.subject!r}"
        if a.scope == "key":
            label = f"key {names.get(a.subject, a.subject)!r} ({a.subject})"
        self.alerts.update(
            kind=KIND,
            active=a.anomalous,
            now=end.timestamp(),
            severity=self.config.severity,
            summary=_summary(a, label, end, self.config),
            labels=self._labels(a.scope, a.subject),
            values=_values(a, self.config),
        )
        if a.anomalous:
            self._firing.add((a.scope, a.subject))
        else:
            self._firing.discard((a.scope, a.subject))

    def _resolve_unjudged(self, scope: str, subject: str, end: datetime) -> None:
        self.alerts.update(
            kind=KIND,
            active=False,
            now=end.timestamp(),
            severity=self.config.severity,
            summary=f"Spend for {scope} {subject!r} is no longer evaluated (no recent history)",
            labels=self._labels(scope, subject),
        )
        self._firing.discard((scope, subject))

    async def run_forever(self, interval_s: float | None = None) -> None:
        """Evaluate every ``evaluate_interval_s`` on the wall clock (the runtime's task)."""
        interval = interval_s or self.config.evaluate_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                await self.evaluate(datetime.now(UTC))
            except Exception:  # a store hiccup must not kill the loop
                log.exception("spend anomaly evaluation failed")


def describe(a: Assessment) -> dict[str, Any]:
    """An assessment as JSON-friendly data (exact decimal strings for money)."""
    return {
        "scope": a.scope,
        "subject": a.subject,
        "observed_usd": _usd(a.observed_pico),
        "baseline_median_usd": _usd(a.median_pico),
        "baseline_mad_usd": _usd(a.mad_pico),
        "robust_z": a.z,
        "baseline_days": a.samples,
        "anomalous": a.anomalous,
    }
