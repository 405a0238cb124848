"""Scorers: plugins registered by type name (see :mod:`.base`)."""

from pilothouse.evals.scorers.base import (
    ENTRY_POINT_GROUP,
    ChatReply,
    ScoreContext,
    Scorer,
    ScorerConfig,
    build_scorer,
    register_scorer,
    scorer_class,
    scorer_types,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "ChatReply",
    "ScoreContext",
    "Scorer",
    "ScorerConfig",
    "build_scorer",
    "register_scorer",
    "scorer_class",
    "scorer_types",
]
