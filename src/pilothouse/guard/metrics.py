"""Guard metrics: verdicts per guard, stage, action and entity type; latency per guard."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

VERDICTS = "pilothouse_guard_verdicts_total"
ENTITIES = "pilothouse_guard_entities_total"
LATENCY = "pilothouse_guard_latency_seconds"
_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0)


class GuardMetrics:
    def __init__(self, registry: Any = None) -> None:
        reg = registry if registry is not None else CollectorRegistry()
        self.verdicts = Counter(
            VERDICTS, "Guard runs by guard, stage and verdict (pass, block, redact, "
            "pseudonymize, flag, error).", ("guard", "stage", "action"), registry=reg,
        )  # fmt: skip
        self.entities = Counter(
            ENTITIES, "Entities found by guards, by guard, action and entity type.",
            ("guard", "action", "entity_type"), registry=reg,
        )  # fmt: skip
        self.latency = Histogram(
            LATENCY, "Time one guard took on one segment.", ("guard", "stage"),
            buckets=_BUCKETS, registry=reg,
        )  # fmt: skip

    def observe(
        self, guard: str, stage: str, action: str, counts: dict[str, int], latency_ms: float
    ) -> None:
        self.verdicts.labels(guard, stage, action).inc()
        for entity, n in counts.items():
            self.entities.labels(guard, action, entity).inc(n)
        self.latency.labels(guard, stage).observe(latency_ms / 1000)
