"""Budget alerts: tell a human at 50 %, 80 % and 100 % of a key's budget, once per period.

Each threshold of each key is one alert condition in the shared
:class:`AlertManager` (same dedupe, same webhook). Two ways in, both cheap:

* :meth:`BudgetAlerts.observe` — no I/O; call it after a request settles with
  the key's spend from the budget backend, so the 50 % and 80 % warnings go
  out the moment they are crossed, before any request is refused;
* :meth:`BudgetAlerts.sweep` — one ``api_keys`` read plus one grouped ledger
  query per distinct period start; run it periodically so alerts still fire
  for spend seen by other replicas and resolve when a new period begins.

Spend within a period only grows, so a *lower* reading (a ledger not yet
flushed, another replica's lagging counter) never resolves an alert; only a
new period, a changed budget or a revoked/unbudgeted key does. That is what
makes "once per threshold per period" hold with two sources of truth.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.costs.config import exact
from pilothouse.limits.budget import period_key, period_start
from pilothouse.limits.keys import KeyRecord, KeyStore
from pilothouse.limits.money import pico_to_str
from pilothouse.store.tables import usage_records as u
from pilothouse.telemetry.alerts import Alert, AlertManager

log = logging.getLogger("pilothouse.costs.budget_alerts")

KIND = "budget_threshold"
_PERIOD_WORDS = {"day": "daily", "month": "monthly", "total": "total"}


def period_end(period_id: str) -> datetime | None:
    """Exclusive end of a period id; ``None`` for ``total`` (it never ends)."""
    start = period_start(period_id)
    if start is None:
        return None
    if period_id.startswith("d:"):
        return start + timedelta(days=1)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start.replace(year=year, month=month)


def percent(threshold: float) -> str:
    """``0.8`` → ``"80%"`` (labels and summaries; float noise rounded away)."""
    return f"{threshold * 100:.6g}%"


@dataclass(slots=True)
class _KeyState:
    period: str
    budget_pico: int
    fired: set[float] = field(default_factory=set)


class BudgetAlerts:
    """Tracks which thresholds fired for which key and period; sends changes to ``alerts``."""

    def __init__(
        self, engine: AsyncEngine, thresholds: Sequence[float], alerts: AlertManager
    ) -> None:
        self.engine = engine
        self.thresholds = sorted(thresholds)
        self.alerts = alerts
        self._state: dict[str, _KeyState] = {}

    # -- per request (no I/O) ------------------------------------------------------------

    def observe(self, key: KeyRecord, spent_pico: int, now: datetime) -> list[Alert]:
        """Report ``key``'s spend in its current budget period; returns messages sent."""
        if key.budget_pico is None or key.budget_pico <= 0:
            return self.forget(key.id, now, reason="no longer has a budget")
        period = period_key(key.budget_period, now.astimezone(UTC))
        sent: list[Alert] = []
        state = self._state.get(key.id)
        if state is not None and (state.period, state.budget_pico) != (period, key.budget_pico):
            still = self._crossed(key.budget_pico, spent_pico) if state.period == period else set()
            why = "budget changed" if state.period == period else f"period {state.period} ended"
            sent += self._resolve(key.id, state, state.fired - still, now, why)
            state = _KeyState(period, key.budget_pico, state.fired & still)
            self._state[key.id] = state
        if state is None:
            state = self._state[key.id] = _KeyState(period, key.budget_pico)
        for threshold in sorted(self._crossed(key.budget_pico, spent_pico) - state.fired):
            sent += self._fire(key, period, threshold, spent_pico, now)
            state.fired.add(threshold)
        return sent

    def forget(self, key_id: str, now: datetime, *, reason: str) -> list[Alert]:
        """Resolve everything firing for a key (revoked, or its budget was removed)."""
        state = self._state.pop(key_id, None)
        if state is None:
            return []
        return self._resolve(key_id, state, set(state.fired), now, reason)

    def _crossed(self, budget_pico: int, spent_pico: int) -> set[float]:
        return {t for t in self.thresholds if spent_pico >= exact(t) * budget_pico}

    def _fire(
        self, key: KeyRecord, period: str, threshold: float, spent: int, now: datetime
    ) -> list[Alert]:
        assert key.budget_pico is not None
        budget = key.budget_pico
        share = Fraction(spent, budget)
        words = _PERIOD_WORDS.get(key.budget_period, key.budget_period)
        summary = (
            f"Key {key.name!r} ({key.id}) has spent {pico_to_str(spent)} USD of its "
            f"{pico_to_str(budget)} USD {words} budget ({float(share) * 100:.1f}%), "
            f"crossing the {percent(threshold)} alert threshold"
        )
        if threshold >= 1.0:
            summary += "; requests are now refused with 429 insufficient_quota"
        alert = self.alerts.update(
            kind=KIND,
            active=True,
            now=now.timestamp(),
            severity="page" if threshold >= 1.0 else "ticket",
            summary=summary,
            labels=self._labels(key.id, threshold, period),
            values={
                "spent_usd": float(Fraction(spent, 10**12)),
                "budget_usd": float(Fraction(budget, 10**12)),
                "fraction": float(share),
                "threshold": threshold,
            },
        )
        return [alert] if alert is not None else []

    def _resolve(
        self, key_id: str, state: _KeyState, thresholds: Iterable[float], now: datetime, why: str
    ) -> list[Alert]:
        sent = []
        for threshold in sorted(thresholds):
            alert = self.alerts.update(
                kind=KIND,
                active=False,
                now=now.timestamp(),
                severity="page" if threshold >= 1.0 else "ticket",
                summary=f"Budget alert {percent(threshold)} for key {key_id} cleared: {why}",
                labels=self._labels(key_id, threshold, state.period),
            )
            if alert is not None:
                sent.append(alert)
        return sent

    @staticmethod
    def _labels(key_id: str, threshold: float, period: str) -> dict[str, str]:
        return {"key_id": key_id, "threshold": percent(threshold), "period": period}

    # -- periodic (reads the store) --------------------------------------------------------

    async def sweep(self, now: datetime) -> list[Alert]:
        """Re-read every budgeted key's spend from the ledger and report it."""
        keys = [k for k in await KeyStore(self.engine).list_all() if k.budget_pico is not None]
        spent = await self.spent_in_periods(keys, now)
        sent: list[Alert] = []
        for key in keys:
            sent += self.observe(key, spent.get(key.id, 0), now)
        budgeted = {k.id for k in keys}
        for key_id in sorted(set(self._state) - budgeted):
            sent += self.forget(key_id, now, reason="the key was revoked or lost its budget")
        return sent

    async def spent_in_periods(self, keys: Sequence[KeyRecord], now: datetime) -> dict[str, int]:
        """Each key's ledger spend in its budget period at ``now`` (pico-USD, exact)."""
        by_period: dict[str, list[str]] = {}
        for key in keys:
            by_period.setdefault(period_key(key.budget_period, now.astimezone(UTC)), []).append(
                key.id
            )
        spent: dict[str, int] = {}
        async with self.engine.connect() as conn:
            for period, ids in by_period.items():
                query = (
                    select(u.c.key_id, func.sum(u.c.cost_pico).label("cost"))
                    .where(u.c.key_id.in_(ids))
                    .group_by(u.c.key_id)
                )
                start, end = period_start(period), period_end(period)
                if start is not None:
                    query = query.where(u.c.created_at >= start)
                if end is not None:
                    query = query.where(u.c.created_at < end)
                for row in await conn.execute(query):
                    spent[row.key_id] = int(row.cost or 0)
        return spent

    async def run_forever(self, interval_s: float) -> None:
        """Sweep every ``interval_s`` on the wall clock (the runtime's task)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.sweep(datetime.now(UTC))
            except Exception:  # a store hiccup must not kill the loop
                log.exception("budget alert sweep failed")
