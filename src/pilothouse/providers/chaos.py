"""The ``chaos`` provider: an in-process upstream that injects faults from config.

For drills and tests of routing, breakers, limits and the ledger without any
network. ``pilothouse chaos serve`` runs the same plan behind real HTTP, for
exercising the ``openai`` provider's wire handling.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from pilothouse.chaos import responses
from pilothouse.chaos.plan import ChaosConfig, ChaosPlan, Outcome
from pilothouse.errors import ProviderError, retryable_status
from pilothouse.providers.base import JSON, BaseProvider, ChatResult, EmbedResult, Usage


class ChaosProvider(BaseProvider):
    config_type = ChaosConfig
    config: ChaosConfig

    def __init__(self, name: str, config: ChaosConfig) -> None:
        super().__init__(name, config)
        self.plan = ChaosPlan(config)

    @property
    def calls(self) -> int:
        return self.plan.calls

    async def _before_first_byte(self, outcome: Outcome, deadline: float) -> None:
        if outcome.latency_s:
            await asyncio.sleep(min(outcome.latency_s, max(deadline - time.monotonic(), 0)))
        if outcome.kind == "timeout" or time.monotonic() >= deadline:
            await asyncio.sleep(max(deadline - time.monotonic(), 0))
            raise ProviderError("chaos: upstream timed out", timeout=True)
        if outcome.kind == "error":
            status = outcome.status
            raise ProviderError(
                f"upstream returned {status}: chaos injected error",
                upstream_status=status,
                retryable=retryable_status(status),
                retry_after=self.config.retry_after_s,
            )
        if outcome.kind == "reset":
            raise ProviderError("upstream connection failed: chaos connection reset")
        if outcome.kind == "malformed":
            raise ProviderError("upstream sent a malformed (non-JSON) body")

    async def chat(self, request: JSON, model: str, deadline: float) -> ChatResult:
        outcome = self.plan.next()
        await self._before_first_byte(outcome, deadline)
        body = responses.completion(self.config, request, model)
        usage = Usage.from_openai(body.get("usage")) or Usage(estimated=True)
        return ChatResult(body, usage)

    async def moderate(self, request: JSON, model: str, deadline: float) -> JSON:
        outcome = self.plan.next()
        await self._before_first_byte(outcome, deadline)
        return responses.moderation(self.config, request, model)

    async def stream_chat(self, request: JSON, model: str, deadline: float) -> AsyncIterator[JSON]:
        outcome = self.plan.next()
        await self._before_first_byte(outcome, deadline)
        delay = self.config.chunk_delay_ms / 1000.0
        for i, chunk in enumerate(responses.chunks(self.config, request, model)):
            if i == outcome.after_chunks and outcome.kind == "cut":
                raise ProviderError("upstream connection failed: chaos cut the stream")
            if i == outcome.after_chunks and outcome.kind == "stall":
                left = deadline - time.monotonic()
                await asyncio.sleep(max(min(self.config.stall_s, left), 0))
                if time.monotonic() >= deadline:
                    raise ProviderError("upstream stalled past the deadline", timeout=True)
            if delay:
                await asyncio.sleep(delay)
            yield chunk

    async def embed(self, request: JSON, model: str, deadline: float) -> EmbedResult:
        outcome = self.plan.next()
        await self._before_first_byte(outcome, deadline)
        body = responses.embeddings(self.config, request, model)
        usage = Usage.from_openai(body.get("usage")) or Usage(estimated=True)
        return EmbedResult(body, usage)
