"""``grounded``: is every sentence of the answer supported by the case's ``context``?

A lexical check, deliberately simple and predictable: a sentence is supported
when enough of its content words (``threshold``) occur in one context passage
and every number in it occurs there too — invented figures are the most
common unsupported claim. It catches answers that drift away from the
sources; paraphrase-heavy answers need a ``judge`` with a grounding rubric.
"""

from __future__ import annotations

import re

from pilothouse.evals.model import Case, Verdict
from pilothouse.evals.scorers.base import ScoreContext, Scorer, ScorerConfig
from pilothouse.evals.scorers.text import preview

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[^\W_]+(?:[.,]\d+)*", re.UNICODE)
_STOPWORDS = frozenset(
    """a an the and or but if then than so of to in on at by for with from as into about
    is are was were be been being am do does did has have had it its this that these those
    there here what which who whom whose when where why how i you he she we they me him her
    us them my your his our their not no yes can could will would should may might must
    also very just only any all some such each other more most own same too out up down
    over under again further once s t don""".split()  # noqa: SIM905 - readable as prose
)


class GroundedConfig(ScorerConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    threshold: float = 0.6
    min_supported: float = 1.0

    def __post_init__(self) -> None:
        for key in ("threshold", "min_supported"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"{key} must be between 0 and 1")


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    words = (w.casefold() for w in _WORD.findall(text))
    return {_stem(w) for w in words if w not in _STOPWORDS}


def _is_number(word: str) -> bool:
    return word.replace(",", "").replace(".", "").isdigit()


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


class GroundedScorer(Scorer[GroundedConfig]):
    config_type = GroundedConfig

    def supported(self, sentence: str, passages: list[set[str]]) -> bool:
        words = content_words(sentence)
        if not words:
            return True
        numbers = {w for w in words if _is_number(w)}
        for passage in passages:
            if not numbers <= passage:
                continue
            if len(words & passage) / len(words) >= self.config.threshold:
                return True
        return False

    async def evaluate(self, case: Case, output: str, ctx: ScoreContext) -> Verdict:
        if not case.context:
            return self.skip("the case has no `context`")
        raw = [case.context] if isinstance(case.context, str) else list(case.context)
        passages = [content_words(p) for p in raw]
        claims = [s for s in sentences(output) if content_words(s)]
        if not claims:
            return self.verdict(True, value=1.0, explanation="no factual sentences to check")
        unsupported = [s for s in claims if not self.supported(s, passages)]
        share = 1 - len(unsupported) / len(claims)
        passed = share >= self.config.min_supported
        why = f"{len(claims) - len(unsupported)}/{len(claims)} sentences supported" + (
            ""
            if not unsupported
            else "; unsupported: " + " | ".join(repr(preview(s, 80)) for s in unsupported[:3])
        )
        return self.verdict(
            passed,
            value=share,
            explanation=why,
            expected="every sentence supported by the context",
            detail={"unsupported": unsupported[:10]},
        )
