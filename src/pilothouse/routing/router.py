"""Route an alias to its targets: ordered fallbacks, retries, deadline, breakers.

Each target gets ``1 + retries`` attempts on retryable failures (connect
errors, timeouts, 429, 5xx); a non-retryable upstream 4xx is the caller's
problem and goes straight back. Streams fall back only until the first chunk
exists, which is before anything reaches the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pilothouse.config.schema import ModelConfig, RoutingConfig, Settings, TargetConfig
from pilothouse.costs.pricing import PriceTable
from pilothouse.errors import (
    ModelNotFoundError,
    ProviderError,
    UpstreamError,
    UpstreamTimeoutError,
)
from pilothouse.gateway.context import Attempt, RequestContext
from pilothouse.guard.scrub import SecretScrubber
from pilothouse.providers.base import JSON, ChatResult, EmbedResult, Provider
from pilothouse.providers.fanout import chat_choices, stream_choices
from pilothouse.providers.responses_native import native_responses
from pilothouse.providers.text_completions import native_completions
from pilothouse.routing import strategies
from pilothouse.routing.breaker import CircuitBreaker
from pilothouse.routing.policy import AliasPolicy, RouteDecision, compile_policies
from pilothouse.routing.retry import retry_delay

T = TypeVar("T")


@dataclass(slots=True)
class Target:
    provider: Provider
    config: TargetConfig
    breaker: CircuitBreaker

    @property
    def label(self) -> str:
        return f"{self.provider.name}/{self.config.model}"


@dataclass(slots=True)
class Route:
    alias: str
    config: ModelConfig
    targets: list[Target]


@dataclass(slots=True)
class OpenStream:
    """A stream whose first chunk has arrived: the point of no fallback."""

    target: Target
    first: JSON
    rest: AsyncIterator[JSON]


class Router:
    def __init__(
        self,
        settings: Settings,
        providers: dict[str, Provider],
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        scrubber: SecretScrubber | None = None,
    ) -> None:
        self.config: RoutingConfig = settings.routing
        # Upstream errors enter the gateway here: their text is cleaned before anyone sees it.
        self.scrubber = scrubber or SecretScrubber.from_settings(settings)
        self.rng = rng or random.Random()
        self.routes: dict[str, Route] = {}
        breakers: dict[str, CircuitBreaker] = {}
        for alias, model in settings.models.items():
            targets = []
            for t in model.targets:
                label = f"{t.provider}/{t.model}"
                breaker = breakers.get(label)
                if breaker is None:
                    breaker = CircuitBreaker(model.breaker or self.config.breaker, clock)
                    breakers[label] = breaker
                targets.append(Target(providers[t.provider], t, breaker))
            self.routes[alias] = Route(alias, model, targets)
        self.breakers = breakers
        self.policies: dict[str, AliasPolicy] = compile_policies(settings.models)
        self.prices = PriceTable(settings.prices)  # `cost` strategy
        self.output_estimate = settings.limits.default_output_estimate
        self.ewmas: dict[str, strategies.Ewma] = {}  # `latency` strategy, by target label

    def all_open(self, route: Route) -> bool:
        """Every target's breaker is open (the degrade trigger); False for target-less aliases."""
        return bool(route.targets) and all(t.breaker.blocked() for t in route.targets)

    def ordered(self, ctx: RequestContext, route: Route, request: JSON | None) -> list[Target]:
        """The alias's targets in the order its strategy tries them; records the decision."""
        policy = route.config.routing
        strategy = policy.strategy if policy is not None else "ordered"
        if strategy not in ("weighted", "latency", "cost") or request is None:
            return route.targets
        if strategy == "weighted":
            order, reason = strategies.weighted(route.targets, self.rng)
        elif strategy == "latency":
            order, reason = strategies.by_latency(route.targets, self.ewmas, ctx.stream)
        else:
            order, reason = strategies.by_cost(
                route.targets, self.prices, request, self.output_estimate
            )
        decision = ctx.route
        if decision is None:
            ctx.route = RouteDecision(strategy, route.alias, route.alias, None, reason)
        elif strategy not in decision.reason:
            decision.reason = f"{decision.reason}; then {strategy}: {reason}"
        return order

    def _observe(self, route: Route, target: Target, seconds: float, first_token: bool) -> None:
        policy = route.config.routing
        if policy is None or policy.strategy != "latency":
            return
        ewma = self.ewmas.get(target.label)
        if ewma is None:
            ewma = self.ewmas[target.label] = strategies.Ewma(policy.latency_alpha)
        ewma.observe(seconds, first_token=first_token)

    def route(self, alias: str) -> Route:
        route = self.routes.get(alias)
        if route is None:
            raise ModelNotFoundError(
                f"The model `{alias}` does not exist or you do not have access to it.",
                param="model",
            )
        return route

    def deadline_for(self, route: Route) -> float:
        return time.monotonic() + (route.config.timeout_s or self.config.timeout_s)

    async def chat(self, ctx: RequestContext, request: JSON) -> ChatResult:
        route = self.route(ctx.alias or "")
        extras = ctx.completion

        def call(t: Target) -> Awaitable[ChatResult]:
            if extras is not None and native_completions(t.provider):
                return t.provider.complete(request, extras, t.config.model, ctx.deadline)  # type: ignore[attr-defined, no-any-return]
            if ctx.responses is not None and native_responses(t.provider):
                return t.provider.respond(request, ctx.responses, t.config.model, ctx.deadline)  # type: ignore[attr-defined, no-any-return]
            return chat_choices(t.provider, request, t.config.model, ctx.deadline)

        return await self._run(ctx, route, call, request)

    async def moderate(self, ctx: RequestContext, request: JSON) -> JSON:
        route = self.route(ctx.alias or "")
        return await self._run(
            ctx,
            route,
            lambda t: t.provider.moderate(request, t.config.model, ctx.deadline),  # type: ignore[attr-defined]
        )

    async def embed(self, ctx: RequestContext, request: JSON) -> EmbedResult:
        route = self.route(ctx.alias or "")
        return await self._run(
            ctx, route, lambda t: t.provider.embed(request, t.config.model, ctx.deadline)
        )

    async def open_stream(self, ctx: RequestContext, request: JSON) -> OpenStream:
        route = self.route(ctx.alias or "")

        async def first_chunk(target: Target) -> OpenStream:
            provider, model = target.provider, target.config.model
            if ctx.completion is not None and native_completions(provider):
                events = provider.stream_complete(request, ctx.completion, model, ctx.deadline)  # type: ignore[attr-defined]
            elif ctx.responses is not None and native_responses(provider):
                events = provider.stream_respond(request, ctx.responses, model, ctx.deadline)  # type: ignore[attr-defined]
            else:
                events = stream_choices(provider, request, model, ctx.deadline)
            rest = self._scrubbed(events)
            try:
                first = await rest.__anext__()
            except StopAsyncIteration:
                raise ProviderError("upstream ended the stream without any data") from None
            except BaseException:
                await _aclose(rest)
                raise
            return OpenStream(target, first, rest)

        return await self._run(ctx, route, first_chunk, request)

    async def _run(
        self,
        ctx: RequestContext,
        route: Route,
        call: Callable[[Target], Awaitable[T]],
        request: JSON | None = None,
    ) -> T:
        last: ProviderError | None = None
        for target in self.ordered(ctx, route, request):
            if not target.breaker.allow():
                ctx.attempts.append(
                    Attempt(target.provider.name, target.config.model, "skipped_open", 0.0)
                )
                continue
            for attempt in range(route.config.retries + 1):
                if attempt and not target.breaker.allow():
                    break
                ctx.provider, ctx.upstream_model = target.provider.name, target.config.model
                started = time.perf_counter()
                try:
                    result = await call(target)
                except ProviderError as exc:
                    last = self.scrubber.error(exc)
                    self._record_failure(ctx, target, exc, started)
                    if not exc.retryable:
                        raise
                    if time.monotonic() >= ctx.deadline:
                        raise self._exhausted(route, last) from None
                    if attempt == route.config.retries:
                        break
                    delay = retry_delay(
                        attempt,
                        exc.retry_after,
                        base=self.config.backoff_base_s,
                        cap=self.config.backoff_max_s,
                        retry_after_cap=self.config.retry_after_cap_s,
                        rng=self.rng,
                    )
                    if delay is None or time.monotonic() + delay >= ctx.deadline:
                        break
                    if delay > 0:
                        await asyncio.sleep(delay)
                    continue
                except BaseException:
                    target.breaker.release()
                    raise
                target.breaker.record_success()
                took = time.perf_counter() - started
                self._observe(route, target, took, isinstance(result, OpenStream))
                ctx.attempts.append(
                    Attempt(target.provider.name, target.config.model, "ok", took, started=started)
                )
                return result
        raise self._exhausted(route, last)

    async def _scrubbed(self, stream: AsyncIterator[JSON]) -> AsyncIterator[JSON]:
        """The upstream stream, with any mid-stream failure's text scrubbed."""
        try:
            async for chunk in stream:
                yield chunk
        except ProviderError as exc:
            raise self.scrubber.error(exc) from None
        finally:
            await _aclose(stream)

    @staticmethod
    def _record_failure(
        ctx: RequestContext, target: Target, exc: ProviderError, started: float
    ) -> None:
        latency = time.perf_counter() - started
        if exc.retryable:
            target.breaker.record_failure()
        else:
            target.breaker.record_success()  # the upstream answered; the request was bad
        ctx.attempts.append(
            Attempt(
                target.provider.name,
                target.config.model,
                "timeout" if exc.timeout else "error",
                latency,
                error=exc.message,
                status=exc.upstream_status,
                started=started,
            )
        )

    @staticmethod
    def _exhausted(route: Route, last: ProviderError | None) -> UpstreamError:
        n = len(route.targets)
        if last is None:
            return UpstreamError(
                f"all {n} target(s) for `{route.alias}` are unavailable (circuit open); "
                "try again later",
                code="circuit_open",
            )
        summary = f"all {n} target(s) for `{route.alias}` failed; last error: {last.message}"
        if last.timeout:
            return UpstreamTimeoutError(summary)
        return UpstreamError(summary)


async def _aclose(stream: AsyncIterator[JSON]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):  # best effort cleanup of a failed upstream stream
            await aclose()
