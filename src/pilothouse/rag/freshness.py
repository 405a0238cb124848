"""Freshness as a metric and an alert: stale documents per collection, checked periodically.

A document is stale as ``pilothouse rag status`` counts it: its source file
changed (or vanished) since indexing, or it is older than the collection's
``freshness.max_age``. Each sweep sets ``pilothouse_rag_stale_documents`` and
reports one ``rag_freshness`` condition per collection to the shared
:class:`AlertManager`, whose webhook claims (``telemetry.alert_claims``) make
every replica's identical finding one message: firing when a collection
first has stale documents, resolved once it has none.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from pilothouse.config.schema import Settings
from pilothouse.rag.service import stale_documents
from pilothouse.rag.store import RagStore
from pilothouse.telemetry.alerts import Alert, AlertManager
from pilothouse.telemetry.metrics import GatewayMetrics

log = logging.getLogger("pilothouse.rag.freshness")

KIND = "rag_freshness"
_SHOWN = 5  # stale ids named in an alert's summary


class FreshnessMonitor:
    def __init__(
        self,
        settings: Callable[[], Settings],
        store: Callable[[], RagStore],
        alerts: AlertManager,
        metrics: GatewayMetrics,
    ) -> None:
        self.settings = settings  # read per sweep: a reload adds or drops collections
        self.store = store
        self.alerts = alerts
        self.metrics = metrics

    async def sweep(self, now: float | None = None) -> list[Alert]:
        """Count stale documents in every collection; returns the alert messages sent."""
        now = time.time() if now is None else now
        sent: list[Alert] = []
        store = self.store()
        for name, coll in sorted(self.settings().rag.collections.items()):
            stale = await stale_documents(coll, await store.documents(name), now)
            self.metrics.set_rag_stale(name, len(stale))
            max_age = coll.freshness.max_age or "none"
            if stale:
                shown = ", ".join(stale[:_SHOWN]) + (" …" if len(stale) > _SHOWN else "")
                summary = (
                    f"RAG collection {name!r} has {len(stale)} stale document(s) "
                    f"(source changed, or older than freshness.max_age {max_age}): {shown}; "
                    f"re-ingest them (`pilothouse rag ingest {name} ...`)"
                )
            else:
                summary = f"RAG collection {name!r} is fresh again: no stale documents"
            alert = self.alerts.update(
                kind=KIND,
                active=bool(stale),
                now=now,
                severity="warning",
                summary=summary,
                labels={"collection": name},
                values={
                    "stale_documents": float(len(stale)),
                    "max_age_s": float(coll.freshness.max_age_s or 0),
                },
            )
            if alert is not None:
                sent.append(alert)
        return sent

    async def run_forever(self) -> None:
        """Sweep every ``rag.freshness_check_interval_s`` (the runtime's task)."""
        while True:
            try:
                await self.sweep()
            except Exception:  # a store hiccup must not kill the loop
                log.exception("RAG freshness sweep failed")
            await asyncio.sleep(self.settings().rag.freshness_check_interval_s)
