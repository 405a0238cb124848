"""Pattern-tier guards: secrets, site regexes and canary tokens (content: ``guard.content``)."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from pilothouse.guard.base import Finding, GuardContext, Scan, Segment
from pilothouse.guard.config import GuardSpec

# Credentials detect-secrets has no current rule for, or only matches as a prefix.
_EXTRA_SECRETS: tuple[tuple[str, str], ...] = (
    ("PRIVATE_KEY", r"-----BEGIN[A-Z ]{0,40}PRIVATE KEY-----[\s\S]*?"
        r"-----END[A-Z ]{0,40}PRIVATE KEY-----"),
    ("API_KEY", r"(?<![A-Za-z0-9])sk-(?:proj-|ant-(?:api\d\d-|admin\d\d-)?|svcacct-|admin-)?"
        r"[A-Za-z0-9_-]{20,}"),
    ("API_KEY", r"(?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}"
        r"|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,}"
        r"|(?:AKIA|ASIA)[A-Z0-9]{16})"),
    ("CONNECTION_STRING", r"\b[a-z][a-z0-9+.-]{1,20}://[^/\s:@]{0,128}:[^/\s@]{1,128}@[^\s/]+"),
    ("BEARER_TOKEN", r"(?i:\bbearer)\s+[A-Za-z0-9._~+/=-]{16,}"),
    ("PASSWORD", r"(?i)\b(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token)\b"
        r"\s*[:=]\s*['\"]?[^\s'\"]{6,}"),
)  # fmt: skip
_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{24,}")


def _detect_secrets_patterns() -> list[tuple[str, re.Pattern[str]]]:
    """The regexes of detect-secrets' regex plugins (their deny lists), by secret type."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    out: list[tuple[str, re.Pattern[str]]] = []
    cls: Any
    for secret_type, cls in get_mapping_from_secret_type_to_class().items():
        if not issubclass(cls, RegexBasedDetector) or secret_type.startswith("Public IP"):
            continue
        label = re.sub(r"[^A-Z0-9]+", "_", secret_type.upper()).strip("_")
        out.extend((label, pattern) for pattern in cls().denylist)
    return out


def shannon_entropy(token: str) -> float:
    counts = Counter(token)
    n = len(token)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def high_entropy(token: str) -> bool:
    """A random-looking credential: mixed case and digits, high entropy, not a word run."""
    if not (any(c.isdigit() for c in token) and any(c.isupper() for c in token)):
        return False
    if not any(c.islower() for c in token):
        return False
    return shannon_entropy(token) >= 4.3


_KEYWORDS = ("key", "pw", "pass", "token", "secret")


def gate_for(pattern: re.Pattern[str]) -> tuple[tuple[str, ...], bool] | None:
    """Words one of which must occur for ``pattern`` to match (and whether to look in the
    lower-cased text), for the rules that are slow because they start with a look-behind
    or an alternation: detect-secrets' keyword rules (``cloudant_password = ...``) need a
    key/password/token word, Artifactory's need their literal prefix."""
    src = pattern.pattern
    if "(?:key|pwd|" in src or "(?:secret[-_]?(?:access)?[-_]?key)" in src:
        return _KEYWORDS, True
    if src.startswith("(?i)\\b(?:password|passwd|pwd|secret|"):
        return _KEYWORDS, True
    for literal in ("AKC", "AP"):
        if src.startswith('(?:\\s|=|:|"|^)' + literal):
            return (literal,), False
    return None


class SecretsGuard:
    heavy = False

    def __init__(self, spec: GuardSpec, ctx: GuardContext) -> None:
        self.spec = spec
        builtin: list[tuple[str, re.Pattern[str]]] = ctx.resource(
            "detect_secrets", _detect_secrets_patterns
        )
        patterns = builtin + [(label, re.compile(p)) for label, p in _EXTRA_SECRETS]
        self.patterns = [(label, p, gate_for(p)) for label, p in patterns]
        self.entropy = spec.threshold is None or spec.threshold > 0

    def scan(self, segment: Segment) -> Scan:
        text = segment.text
        low = text.lower()
        found: list[Finding] = []
        for label, pattern, gate in self.patterns:
            if gate is not None:
                words, lowered = gate
                haystack = low if lowered else text
                if not any(w in haystack for w in words):
                    continue  # a word the rule requires is absent: it cannot match
            found.extend(
                Finding(label, m.start(), m.end())
                for m in pattern.finditer(text)
                if m.end() > m.start()
            )
        if self.entropy:
            found.extend(
                Finding("HIGH_ENTROPY_STRING", m.start(), m.end(), 0.7)
                for m in _TOKEN.finditer(text)
                if high_entropy(m.group(0))
            )
        return Scan(found)


class RegexGuard:
    heavy = False

    def __init__(self, spec: GuardSpec, ctx: GuardContext) -> None:
        if not spec.pattern:
            raise ValueError("a regex guard needs `pattern`")
        try:
            self.pattern = re.compile(spec.pattern)
        except re.error as exc:
            raise ValueError(f"pattern: invalid regex: {exc}") from None
        self.spec = spec
        self.entity = re.sub(r"[^A-Z0-9]+", "_", (spec.name or "REGEX").upper()).strip("_")

    def scan(self, segment: Segment) -> Scan:
        return Scan(
            [
                Finding(self.entity, m.start(), m.end())
                for m in self.pattern.finditer(segment.text)
                if m.end() > m.start()
            ]
        )


CANARY_PREFIX = "ph-canary-"
_CANARY = re.compile(re.escape(CANARY_PREFIX) + r"[0-9a-f]{16}")


class CanaryGuard:
    """Finds canary tokens in an answer: the engine plants one in each system prompt, and
    configured ``tokens`` are matched verbatim. Either in the output = prompt leakage."""

    heavy = False

    def __init__(self, spec: GuardSpec, ctx: GuardContext) -> None:
        self.spec = spec
        self.static = [re.compile(re.escape(t)) for t in spec.tokens if t]

    def scan(self, segment: Segment) -> Scan:
        text = segment.text
        found = [Finding("CANARY_TOKEN", m.start(), m.end()) for m in _CANARY.finditer(text)]
        for p in self.static:
            found.extend(Finding("CANARY_TOKEN", m.start(), m.end()) for m in p.finditer(text))
        return Scan(found)


Factory = Callable[[GuardSpec, GuardContext], Any]
