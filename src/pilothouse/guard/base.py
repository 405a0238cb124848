"""What every guard shares: segments, findings, scan results and the plugin registry.

A guard is a plugin registered by its ``type`` name. It scans one text segment
and returns findings (entity type + span + score); the engine, not the guard,
applies the policy's action, so every guard supports block, redact,
pseudonymize and flag the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pilothouse.errors import ConfigError
from pilothouse.guard.config import GuardSpec

UNTRUSTED = frozenset({"tool", "document"})


@dataclass(frozen=True, slots=True)
class Finding:
    entity: str
    start: int
    end: int
    score: float = 1.0


@dataclass(slots=True)
class Scan:
    findings: list[Finding] = field(default_factory=list)
    score: float | None = None  # a guard's overall score (injection, content)
    # Extra receipt fields, never content: e.g. the classifier used, its alias and latency.
    info: dict[str, Any] | None = None


@dataclass(slots=True)
class Segment:
    """One piece of content with its provenance: where it came from decides the policy."""

    provenance: str  # system | user | assistant | tool | document | output | stream
    label: str  # e.g. "user[0]", "tool[2]", "document[0]", "output", "stream[3]"
    text: str

    @property
    def untrusted(self) -> bool:
        return self.provenance in UNTRUSTED


class Guard(Protocol):
    spec: GuardSpec
    heavy: bool  # True when a scan may cost more than the pattern tier (NER, models)

    def scan(self, segment: Segment) -> Scan: ...


class ModelCaller(Protocol):
    """How a guard asks a gateway alias (a moderation endpoint, an LLM judge).

    The call is routed like any request (retries, fallbacks, breakers), costed and
    recorded as its own usage row for the key being guarded, and never guarded
    itself: a guard's own call cannot recurse into the guard."""

    async def chat(
        self, request: Any, alias: str, body: dict[str, Any], guard: str
    ) -> tuple[dict[str, Any], str]:
        """(the response body, the call's own request id)."""
        ...

    async def moderate(
        self, request: Any, alias: str, body: dict[str, Any], guard: str
    ) -> tuple[dict[str, Any], str]: ...


@dataclass(frozen=True, slots=True)
class RemoteCall:
    """What a remote guard's scan gets: the caller, bound to the request it guards."""

    caller: ModelCaller
    request: Any  # the gateway's RequestContext
    guard: str

    async def chat(self, alias: str, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        return await self.caller.chat(self.request, alias, body, self.guard)

    async def moderate(self, alias: str, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        return await self.caller.moderate(self.request, alias, body, self.guard)


class RemoteGuard(Guard, Protocol):
    """A guard whose scan is a network call: awaited on the loop (never a worker thread),
    bounded by ``timeout_s`` (its own or the policy's), decided by ``on_error`` on failure."""

    remote: bool
    timeout_s: float | None

    async def scan_remote(self, segment: Segment, call: RemoteCall) -> Scan: ...


class GuardContext(Protocol):
    """What a guard may read about the request at build time (shared resources)."""

    def resource(self, name: str, build: Callable[[], Any]) -> Any: ...


GuardFactory = Callable[[GuardSpec, GuardContext], Guard]


class GuardRegistry:
    """Guard types by name. Built-ins are added by :func:`default_registry`; tests and
    plugins may register more on the registry a runtime uses."""

    def __init__(self) -> None:
        self._factories: dict[str, GuardFactory] = {}
        self._lazy: dict[str, str] = {}

    def register(self, name: str, factory: GuardFactory) -> None:
        self._factories[name] = factory

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``module:attr``, imported only when a policy uses it."""
        self._lazy[name] = target

    def names(self) -> list[str]:
        return sorted({*self._factories, *self._lazy})

    def factory(self, type_: str, where: str) -> GuardFactory:
        from pilothouse.guard.registry import load_factory

        if type_ in self._factories:
            return self._factories[type_]
        target = self._lazy.get(type_) or (type_ if ":" in type_ else None)
        if target is None:
            raise ConfigError(
                f"{where}.type: unknown guard type {type_!r}; known: {', '.join(self.names())}"
            )
        try:
            self._factories[type_] = load_factory(target)
        except ValueError as exc:
            raise ConfigError(f"{where}.type: {exc}") from None
        return self._factories[type_]

    def build(self, spec: GuardSpec, ctx: GuardContext, where: str) -> Guard:
        factory = self.factory(spec.type, where)
        try:
            return factory(spec, ctx)
        except ConfigError:
            raise
        except (ValueError, OSError, ImportError) as exc:
            raise ConfigError(f"{where}: {exc}") from None


def merge_spans(findings: list[Finding]) -> list[Finding]:
    """Union overlapping findings so a replacement never leaves a fragment behind.

    The merged span keeps the entity of its longest member (ties: highest score).
    """
    out: list[Finding] = []
    for f in sorted(findings, key=lambda f: (f.start, -(f.end - f.start))):
        if out and f.start < out[-1].end:
            last = out[-1]
            keep = last
            if (f.end - f.start, f.score) > (last.end - last.start, last.score):
                keep = f
            out[-1] = Finding(
                keep.entity, last.start, max(last.end, f.end), max(last.score, f.score)
            )
        else:
            out.append(f)
    return out
