"""One request's guard state: receipt, placeholders, surrogates, cache verdict.

Lives on ``RequestContext.guards``; the trace, the header and the metrics all
read the same receipt, so what the client is told and what is stored agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SEVERITY = {"error": 5, "block": 4, "redact": 3, "pseudonymize": 2, "flag": 1, "pass": 0}


@dataclass(slots=True)
class GuardState:
    policy: str
    conversation: str
    receipt: list[dict[str, Any]] = field(default_factory=list)
    placeholders: dict[tuple[str, str], str] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    surrogates: dict[str, str] = field(default_factory=dict)  # surrogate -> original
    new_surrogates: dict[str, str] = field(default_factory=dict)
    canary: str | None = None
    untrusted_seen: bool = False
    nocache: bool = False
    declared_tools: dict[str, Any] = field(default_factory=dict)
    output_done: bool = False
    request: Any = None  # the RequestContext guarded: a remote classifier's call is billed to it

    def placeholder(self, entity: str, value: str) -> str:
        key = (entity, value)
        found = self.placeholders.get(key)
        if found is None:
            n = self.counters.get(entity, 0) + 1
            self.counters[entity] = n
            found = self.placeholders[key] = f"<{entity}_{n}>"
        return found

    def record(
        self,
        *,
        guard: str,
        type_: str,
        stage: str,
        segment: str,
        verdict: str,
        entities: dict[str, int] | None = None,
        score: float | None = None,
        latency_ms: float = 0.0,
        info: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        entry = {
            "guard": guard,
            "type": type_,
            "stage": stage,
            "segment": segment,
            "verdict": verdict,
            "entities": entities or {},
            "score": score,
            "latency_ms": round(latency_ms, 3),
        }
        if info:
            entry.update(info)
        self.receipt.append(entry)
        return entry

    def summary(self) -> str:
        """``x-pilothouse-guards``: per stage and guard, the most severe verdict and counts."""
        agg: dict[tuple[str, str], tuple[str, dict[str, int]]] = {}
        for e in self.receipt:
            k = (e["stage"], e["guard"])
            verdict, counts = agg.get(k, ("pass", {}))
            if SEVERITY.get(e["verdict"], 0) > SEVERITY.get(verdict, 0):
                verdict = e["verdict"]
            for ent, n in e["entities"].items():
                counts[ent] = counts.get(ent, 0) + n
            agg[k] = (verdict, counts)
        parts = []
        for (stage, guard), (verdict, counts) in agg.items():
            detail = ",".join(f"{k}:{v}" for k, v in sorted(counts.items()))
            parts.append(f"{stage}.{guard}={verdict}" + (f"({detail})" if detail else ""))
        return f"policy={self.policy}; " + "; ".join(parts) if parts else f"policy={self.policy}"
