"""Guard fixtures shared by the guard tests: the issue's policy and a guard that raises."""

from __future__ import annotations

from typing import Any

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
