"""Fixtures for the eval unit tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pilothouse.evals.scorers.base import Scorer, build_scorer


@pytest.fixture
def make_scorer(tmp_path: Path) -> Callable[..., Scorer[Any]]:
    def build(**raw: Any) -> Scorer[Any]:
        return build_scorer(raw, tmp_path, "test")

    return build
