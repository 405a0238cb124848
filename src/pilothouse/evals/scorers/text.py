"""Deterministic text scorers: exact, contains, regex and numeric.

``exact`` and ``contains`` compare normalised text (case, whitespace and
punctuation ignored) so "Paris." matches "paris"; a list ``expected`` means
"any of these answers".
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pilothouse.evals.model import Case, Verdict
from pilothouse.evals.scorers.base import ScoreContext, Scorer, ScorerConfig

_SPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?![\w])")
_PREVIEW = 120


def normalise(text: str) -> str:
    """Casefold, drop punctuation, collapse whitespace (NFKC first, so variants agree)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return _SPACE.sub(" ", kept).strip()


def preview(text: str, limit: int = _PREVIEW) -> str:
    flat = _SPACE.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def expected_texts(expected: Any) -> list[str] | None:
    """Acceptable answers as strings; ``None`` when there is no textual expectation."""
    if expected is None or isinstance(expected, dict | bool):
        return None
    if isinstance(expected, list):
        items = [str(e) for e in expected if isinstance(e, str | int | float)]
        return items or None
    return [str(expected)]


class ExactConfig(ScorerConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class ExactScorer(Scorer[ExactConfig]):
    config_type = ExactConfig

    async def evaluate(self, case: Case, output: str, ctx: ScoreContext) -> Verdict:
        answers = expected_texts(case.expected)
        if answers is None:
            return self.skip("the case has no textual `expected`")
        got = normalise(output)
        passed = any(got == normalise(a) for a in answers)
        shown = " | ".join(answers)
        why = "" if passed else f"expected {shown!r}, got {preview(output)!r}"
        return self.verdict(passed, explanation=why, expected=shown)


class ContainsConfig(ScorerConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    mode: Literal["any", "all"] = "any"


class ContainsScorer(Scorer[ContainsConfig]):
    config_type = ContainsConfig

    async def evaluate(self, case: Case, output: str, ctx: ScoreContext) -> Verdict:
        answers = expected_texts(case.expected)
        if answers is None:
            return self.skip("the case has no textual `expected`")
        got = normalise(output)
        found = [a for a in answers if normalise(a) in got]
        passed = bool(found) if self.config.mode == "any" else len(found) == len(answers)
        missing = [a for a in answers if a not in found]
        shown = " | ".join(answers) if self.config.mode == "any" else " & ".join(answers)
        why = "" if passed else f"missing {', '.join(map(repr, missing))} in {preview(output)!r}"
        return self.verdict(passed, explanation=why, expected=shown)


class RegexConfig(ScorerConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pattern: str
    ignore_case: bool = False
    negate: bool = False

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"invalid regex {self.pattern!r}: {exc}") from None


class RegexScorer(Scorer[RegexConfig]):
    """Passes when ``pattern`` is found (or, with ``negate``, when it is absent)."""

    config_type = RegexConfig

    def __init__(self, config: RegexConfig, base_dir: Any) -> None:
        super().__init__(config, base_dir)
        flags = re.IGNORECASE if config.ignore_case else 0
        self.regex = re.compile(config.pattern, flags)

    async def evaluate(self, case: Case, output: str, ctx: ScoreContext) -> Verdict:
        match = self.regex.search(output)
        passed = (match is None) if self.config.negate else (match is not None)
        want = f"{'no ' if self.config.negate else ''}match for /{self.config.pattern}/"
        if passed:
            why = f"matched {match.group(0)!r}" if match else ""
        else:
            found = f"found {match.group(0)!r}" if match else "no match"
            why = f"expected {want}; {found} in {preview(output)!r}"
        return self.verdict(passed, explanation=why, expected=want)


class NumericConfig(ScorerConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    tolerance: float = 0.0
    relative: bool = False
    pick: Literal["last", "first"] = "last"

    def __post_init__(self) -> None:
        if self.tolerance < 0:
            raise ValueError("tolerance must be >= 0")


def parse_number(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", "").replace("+", ""))
    except InvalidOperation:
        return None


def numbers_in(text: str) -> list[Decimal]:
    found = (parse_number(m.group(0)) for m in _NUMBER.finditer(text) if m.group(0).strip("+-"))
    return [n for n in found if n is not None]


class NumericScorer(Scorer[NumericConfig]):
    """Compares the last (or first) number in the output with ``expected``, in decimals."""

    config_type = NumericConfig

    async def evaluate(self, case: Case, output: str, ctx: ScoreContext) -> Verdict:
        raw = case.expected
        target = None
        if isinstance(raw, int | float | str) and not isinstance(raw, bool):
            target = parse_number(str(raw).strip())
        if target is None:
            return self.skip("the case has no numeric `expected`")
        numbers = numbers_in(output)
        if not numbers:
            return self.verdict(
                False, explanation=f"no number in {preview(output)!r}", expected=str(raw)
            )
        got = numbers[-1] if self.config.pick == "last" else numbers[0]
        allowed = Decimal(str(self.config.tolerance))
        if self.config.relative:
            allowed *= abs(target)
        passed = abs(got - target) <= allowed
        why = "" if passed else f"expected {target} (±{allowed}), got {got}"
        return self.verdict(passed, explanation=why, expected=str(raw), detail={"got": str(got)})
