"""One replica's view of the rollouts: cached routing, arm counters, guards, rollback.

The hot path only reads :attr:`RolloutManager.by_target` (a dict) and adds
to an in-memory delta map. A background task, every
``rollouts.evaluate_interval_s``: flushes the deltas to the shared counters,
polls the store for rollouts changed elsewhere (Redis pub/sub is the fast
path), and evaluates the guards of running rollouts from the cluster totals.
A breach rolls back through a compare-and-set on the rollout's state, so the
replica that wins alone writes the audit row and raises the alert; every
replica stops sending traffic to the candidate on its next poll or message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.rollout import arms, guards
from pilothouse.rollout.config import RolloutsConfig
from pilothouse.rollout.history import GuardHistory
from pilothouse.rollout.model import Rollout
from pilothouse.rollout.shared import ArmCounters, RedisArmCounters, StoreArmCounters, Totals
from pilothouse.rollout.store import RolloutStore

log = logging.getLogger("pilothouse.rollout")
CHANNEL = "rollouts:changed"
_REMEMBERED = 50_000  # request id → (rollout, arm), for online eval scores arriving later


class RolloutManager:
    def __init__(
        self,
        config: RolloutsConfig,
        engine: AsyncEngine,
        redis: Redis | None,
        prefix: str,
        *,
        alert: Callable[..., object] | None = None,
    ) -> None:
        self.config = config
        self.store = RolloutStore(engine)
        self.history = GuardHistory(engine, config.history_interval_s)
        self.counters: ArmCounters = (
            RedisArmCounters(redis, prefix) if redis is not None else StoreArmCounters(engine)
        )
        self.redis = redis
        self.channel = prefix + CHANNEL
        self.alert = alert
        self.by_target: dict[str, Rollout] = {}
        self.marks: dict[str, dict[str, Any]] = {}
        self.verdicts: dict[str, list[guards.Verdict]] = {}
        self._pending: dict[tuple[str, str], dict[str, float]] = {}
        self._arms_of: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._since = datetime.now(UTC)
        self._generation = 0
        self.rollbacks = 0  # rollbacks this replica performed (won the compare-and-set)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.reload()
        self._task = asyncio.create_task(self._run(), name="rollouts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()

    async def reload(self) -> None:
        """Rebuild the routing cache from the store (each target's latest routing rollout)."""
        generation = self._generation = self._generation + 1
        table = {ro.target: ro for ro in await self.store.active()}  # one per target
        if generation == self._generation:
            self.by_target = table

    async def _run(self) -> None:
        interval = self.config.evaluate_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # store or Redis briefly down: routing keeps its cache
                log.warning("rollout evaluation failed: %s", exc)

    async def tick(self) -> None:
        """Flush, pick up changes, evaluate every running rollout (tests call this directly)."""
        await self.flush()
        changed, polled = await self.store.changed_since(self._since - timedelta(seconds=2))
        self._since = polled
        if changed:
            await self.reload()
        for ro in list(self.by_target.values()):
            if ro.state == "running":
                await self.evaluate(ro)

    # -- hot path -------------------------------------------------------------------------

    def lookup(self, target: str) -> Rollout | None:
        return self.by_target.get(target)

    def record(self, rollout_id: str, arm: str, deltas: dict[str, float]) -> None:
        pending = self._pending.setdefault((rollout_id, arm), {})
        for name, value in deltas.items():
            pending[name] = pending.get(name, 0.0) + value

    def record_request(
        self,
        rollout_id: str,
        arm: str,
        request_id: str,
        *,
        status: int,
        latency_s: float,
        ttft_s: float | None,
        cost_usd: float,
    ) -> None:
        self.record(
            rollout_id,
            arm,
            arms.request_deltas(
                status=status, latency_s=latency_s, ttft_s=ttft_s, cost_usd=cost_usd
            ),
        )
        self._arms_of[request_id] = (rollout_id, arm)
        if len(self._arms_of) > _REMEMBERED:
            self._arms_of.popitem(last=False)

    def on_score(self, request_id: str, scorer: str, value: float | None) -> None:
        """An online eval score for a request this replica served: add it to its arm."""
        where = self._arms_of.get(request_id)
        if where is not None and value is not None:
            self.record(where[0], where[1], arms.score_deltas(scorer, float(value)))

    async def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        try:
            await self.counters.add(pending)
        except Exception:
            for key, fields in pending.items():  # keep them for the next flush
                self.record(key[0], key[1], fields)
            raise

    # -- guards ---------------------------------------------------------------------------

    async def totals(self, rollout_id: str) -> Totals:
        return await self.counters.read(rollout_id)

    async def evaluate(self, ro: Rollout) -> list[guards.Verdict]:
        totals = await self.totals(ro.id)
        marks = self.marks.get(ro.id)
        if marks is None or any(
            f"guard:{g.metric}" not in marks
            for g in ro.options.guards
            if g.metric == "latency_p95_s"
        ):
            marks = self.marks[ro.id] = await self.store.marks(ro.id)
        for name, value in guards.marks_needed(ro, totals, marks).items():
            marks[name] = await self.store.mark_once(ro.id, name, value)
        verdicts = guards.evaluate(ro, totals, marks)
        self.verdicts[ro.id] = verdicts
        breached = [v for v in verdicts if v.breached]
        if breached:
            await self.auto_rollback(ro, breached[0], totals)
        elif ro.steps and ro.step_after and ro.step_index < len(ro.steps) - 1:
            done = totals.get("candidate", {}).get("n", 0.0)
            if done >= ro.step_after * (ro.step_index + 1):
                nxt = ro.steps[ro.step_index + 1]
                if await self.store.advance_step(ro.id, ro.step_index, share=nxt):
                    await self.changed()
        try:  # after the rollback decision: a trend point must never delay or block it
            await self.history.record(ro.id, verdicts, time.time(), force=bool(breached))
        except Exception as exc:
            log.warning("rollout %s: guard history not written: %s", ro.id, exc)
        return verdicts

    async def auto_rollback(self, ro: Rollout, verdict: guards.Verdict, totals: Totals) -> bool:
        alpha, n_opt = ro.options.alpha, float(ro.options.min_samples)
        figures = {
            arm: arms.summary(totals.get(arm, {}), alpha, n_opt)
            for arm in ("baseline", "candidate")
        }
        record = {"guard": verdict.metric, "verdict": verdict.public(), "arms": figures}
        won = await self.store.end(
            ro.id,
            "rolled_back",
            actor="rollout-guard",
            reason=f"guard {verdict.metric} breached",
            verdict=record,
            audit_details={"guard": verdict.metric, "statistic": verdict.public().get("statistic")},
        )
        if not won:
            await self.reload()  # another replica rolled it back first
            return False
        self.rollbacks += 1
        await self.changed()
        if self.alert is not None:
            self._alert(ro, verdict, figures)
        return True

    def _alert(self, ro: Rollout, verdict: guards.Verdict, figures: dict[str, Any]) -> None:
        pub = verdict.public()

        def fig(arm: str, metric: str) -> float:
            value = figures[arm].get(metric)
            if isinstance(value, dict):
                value = value.get("value")
            return float(value) if isinstance(value, int | float) else float("nan")

        metric = verdict.metric
        values: dict[str, float] = {
            "statistic": float(pub.get("statistic") or 0.0),
            "boundary": float(pub.get("boundary") or 0.0),
            "alpha": verdict.alpha,
            "baseline_requests": float(figures["baseline"]["requests"]),
            "candidate_requests": float(figures["candidate"]["requests"]),
        }
        if not metric.startswith("online_eval."):
            values["baseline_value"] = fig("baseline", metric)
            values["candidate_value"] = fig("candidate", metric)
        assert self.alert is not None
        self.alert(
            kind="rollout_rollback",
            active=True,
            now=time.time(),
            severity="page",
            summary=(
                f"rollout {ro.id} on {ro.target} rolled back: guard {metric} breached "
                f"(statistic {values['statistic']:.4g} > boundary {values['boundary']:.4g}; "
                f"candidate {values.get('candidate_value', float('nan')):.4g} vs baseline "
                f"{values.get('baseline_value', float('nan')):.4g})"
            ),
            labels={
                "rollout": ro.id,
                "target": ro.target,
                "guard": metric,
                "candidate": ro.candidate_name(),
            },
            values=values,
        )

    async def changed(self) -> None:
        """This replica changed a rollout: reload now and tell the others."""
        await self.reload()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.publish(self.channel, "changed")

    def spawn_reload(self, spawn: Callable[[Awaitable[None]], None]) -> None:
        spawn(self.reload())
