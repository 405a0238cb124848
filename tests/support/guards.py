"""Guard fixtures shared by the guard tests: the issue's policy and a guard that raises."""

from __future__ import annotations

import threading
from typing import Any

import msgspec

from pilothouse.guard.base import Scan, Segment
from pilothouse.guard.config import GuardSpec

ISSUE_GUARDS: dict[str, Any] = {
    "default": {
        "input": [
            {
                "type": "pii",
                "action": "pseudonymize",
                "entities": [
                    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN",
                    "IP_ADDRESS", "PERSON",
                ],
            },
            {"type": "secrets", "action": "block"},
            {"type": "injection", "action": "block", "threshold": 0.5},
            {"type": "regex", "name": "internal-ids", "pattern": "ACME-\\d{6}", "action": "redact"},
        ],
        "output": [
            {"type": "pii", "action": "redact"},
            {"type": "secrets", "action": "redact"},
            {"type": "content", "categories": ["violence", "self_harm", "sexual", "hate"],
             "action": "block"},
            {"type": "canary", "action": "block"},
        ],
        "tools": {"allow": ["get_weather", "search_docs"], "validate_arguments": True},
        "on_error": "block",
    }
}  # fmt: skip

EXPLODING = "tests.support.guards:ExplodingGuard"


class ExplodingGuard:
    """A guard whose scan always raises: proves ``on_error`` decides, not luck."""

    heavy = False

    def __init__(self, spec: GuardSpec, ctx: Any) -> None:
        self.spec = spec

    def scan(self, segment: Segment) -> Scan:
        raise RuntimeError("guard backend unavailable")


class _Faulty:
    """A built-in guard that runs for real and then fails: its scan raises after the real
    scan, or (``faulty_slow_*``) blocks in its worker thread until released, so ``on_error``
    and the guard timeout are exercised on every guard type, not only on a toy one."""

    slow = False

    def __init__(self, spec: GuardSpec, ctx: Any, inner_type: str) -> None:
        from pilothouse.guard.registry import default_registry

        self.spec = spec
        real = msgspec.structs.replace(spec, type=inner_type)
        self.inner = default_registry().build(real, ctx, f"faulty {inner_type}")
        self.heavy = self.slow  # a slow guard runs in the worker pool, under the timeout

    def scan(self, segment: Segment) -> Scan:
        self.inner.scan(segment)
        if self.slow:
            RELEASE_SLOW.wait(60)
            return Scan([])
        raise RuntimeError("guard backend unavailable")


RELEASE_SLOW = threading.Event()


def __getattr__(name: str) -> Any:
    """``tests.support.guards:faulty_<type>`` / ``faulty_slow_<type>`` for any guard type."""
    for prefix, slow in (("faulty_slow_", True), ("faulty_", False)):
        if name.startswith(prefix):
            inner = name[len(prefix) :]
            cls = type(f"Faulty_{inner}", (_Faulty,), {"slow": slow})
            return lambda spec, ctx: cls(spec, ctx, inner)
    raise AttributeError(name)
