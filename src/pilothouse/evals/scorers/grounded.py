"""``grounded``: is every sentence of the answer supported by the case's ``context``?

A lexical check, deliberately simple and predictable: a sentence is supported
when enough of its content words (``threshold``) occur in one context passage
and every number in it occurs there too — invented figures are the most
common unsupported claim. It catches answers that drift away from the
sources; paraphrase-heavy answers need a ``judge`` with a grounding rubric.

The passages are the case's ``context`` or, with ``retrieval:
{collection, k?, mode?, groups?, config?}``, the chunks that collection
retrieves for the case's query (its input; the last user message of a chat
input), searched through the RAG service over ``config`` the way a prompt
bundle's ``retrieval`` block searches at serve time — give it the bundle's
collection, k, mode and the caller's groups and the answer is checked against
the very passages the model was shown. Both together: either may support.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import msgspec

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


class GroundedRetrieval(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    collection: str
    config: str = "pilothouse.yaml"  # relative to the suite
    k: int | None = None  # None: the collection's search.k
    mode: Literal["dense", "keyword", "hybrid"] | None = None
    groups: list[str] | None = None  # the caller's ACL groups; None reads everything


class GroundedConfig(ScorerConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    threshold: float = 0.6
    min_supported: float = 1.0
    retrieval: GroundedRetrieval | None = None

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

    def __init__(self, config: GroundedConfig, base_dir: Path) -> None:
        super().__init__(config, base_dir)
        self.search: Any = None
        if config.retrieval is not None:
            from pilothouse.rag.scorer import CollectionSearch

            self.search = CollectionSearch(base_dir / config.retrieval.config)

    async def aclose(self) -> None:
        if self.search is not None:
            await self.search.aclose()

    async def _retrieved(self, case: Case) -> tuple[list[str], list[str]]:
        """(chunk texts, their document ids) the configured collection finds for the case."""
        spec = self.config.retrieval
        assert spec is not None and self.search is not None
        query = case.prompt_text()
        if not query.strip():
            return [], []
        service = await self.search.open()
        result = await service.search(
            spec.collection, query, k=spec.k, mode=spec.mode, groups=spec.groups
        )
        return [h.text for h in result.hits], [h.document_id for h in result.hits]

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
        raw: list[str] = []
        if case.context:
            raw = [case.context] if isinstance(case.context, str) else list(case.context)
        retrieved: list[str] | None = None
        if self.config.retrieval is not None:
            texts, retrieved = await self._retrieved(case)
            raw += texts
        elif not raw:
            return self.skip("the case has no `context`")
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
            detail={
                "unsupported": unsupported[:10],
                **({"retrieved": retrieved} if retrieved is not None else {}),
            },
        )
