"""``retrieval`` scorer: how well a collection retrieves a case's relevant documents.

The case's ``input`` is the query and ``expected`` the relevant document ids
(a list, or ``{id: grade}``). The verdict's value is nDCG@10; recall@k and
MRR ride along in ``detail.metrics``, so gates can read
``retrieval.ndcg_at_10``, ``retrieval.recall_at_10`` or ``retrieval.mrr``.
Searches run through the RAG service over the config named by ``config``
(relative to the suite), with embeddings through an in-process gateway.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Literal

from pilothouse.evals.model import Case, Verdict
from pilothouse.evals.scorers.base import ScoreContext, Scorer, ScorerConfig
from pilothouse.rag.evaluation import case_metrics, dedupe
from pilothouse.rag.service import RagService


class RetrievalConfig(ScorerConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    collection: str
    config: str = "pilothouse.yaml"
    k: int = 10
    mode: Literal["dense", "keyword", "hybrid"] | None = None
    min_ndcg: float = 0.0
    groups: list[str] | None = None


class CollectionSearch:
    """A :class:`RagService` over the suite's config, opened on first use (scorers share it)."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.service: RagService | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    async def open(self) -> RagService:
        if self.service is None:
            from pilothouse.cli.rag import service_for
            from pilothouse.config.load import load_settings

            settings = load_settings(self.config_path)
            self._stack = contextlib.AsyncExitStack()
            self.service = await self._stack.enter_async_context(service_for(settings, None, None))
        return self.service

    async def aclose(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()


class RetrievalScorer(Scorer[RetrievalConfig]):
    config_type = RetrievalConfig

    def __init__(self, config: RetrievalConfig, base_dir: Path) -> None:
        super().__init__(config, base_dir)
        self.search = CollectionSearch(base_dir / config.config)

    @property
    def service(self) -> RagService | None:
        return self.search.service

    @service.setter
    def service(self, value: RagService | None) -> None:
        self.search.service = value

    async def _service(self) -> RagService:
        return await self.search.open()

    async def aclose(self) -> None:
        await self.search.aclose()

    async def evaluate(self, case: Case, output: str, ctx: ScoreContext) -> Verdict:
        relevant = _relevant(case.expected)
        if not relevant:
            return self.skip("the case has no relevant document ids in `expected`")
        service = await self._service()
        k = self.config.k
        result = await service.search(
            self.config.collection,
            case.prompt_text(),
            k=max(k, 10) * 5,
            mode=self.config.mode,
            groups=self.config.groups,
        )
        ranked = dedupe([h.document_id for h in result.hits])
        metrics = case_metrics(ranked, relevant, k)
        ndcg = metrics["ndcg_at_10"]
        return self.verdict(
            ndcg >= self.config.min_ndcg and metrics[f"recall_at_{k}"] > 0,
            value=ndcg,
            explanation=f"nDCG@10 {ndcg:.3f}, recall@{k} {metrics[f'recall_at_{k}']:.3f}",
            detail={"metrics": metrics, "retrieved": ranked[:k]},
        )


def _relevant(expected: Any) -> dict[str, int]:
    if isinstance(expected, dict):
        return {str(k): int(v) for k, v in expected.items() if int(v) > 0}
    if isinstance(expected, list):
        return {str(x): 1 for x in expected}
    if isinstance(expected, str) and expected:
        return {expected: 1}
    return {}
