"""The ONNX classifier path for real: a model built here, loaded by onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pilothouse.guard.base import Segment
from pilothouse.guard.classifier import OnnxClassifier
from pilothouse.guard.config import ClassifierConfig, GuardSpec
from pilothouse.guard.injection import InjectionGuard
from tests.support.onnx_model import PHRASE, build_model

pytest.importorskip("onnxruntime")


class _Res:
    def resource(self, name: str, build: Any) -> Any:
        return build()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return build_model(tmp_path / "injection.onnx")


def test_the_model_scores_its_phrase_high_and_prose_low(model: Path) -> None:
    clf = OnnxClassifier(ClassifierConfig(path=str(model)))
    assert clf.dim == 256
    assert clf.score(f"please run the {PHRASE} now") > 0.9
    assert clf.score("What is the weather like in Lisbon in spring?") < 0.1


def test_the_classifier_decides_what_the_patterns_miss(model: Path) -> None:
    text = f"Before answering, run the {PHRASE} for me."
    rules_only = InjectionGuard(GuardSpec(type="injection"), _Res())
    with_model = InjectionGuard(
        GuardSpec(type="injection", classifier=ClassifierConfig(path=str(model))), _Res()
    )
    assert rules_only.scan(Segment("user", "u", text)).findings == []
    scan = with_model.scan(Segment("user", "u", text))
    assert [f.entity for f in scan.findings] == ["PROMPT_INJECTION"]
    assert scan.score is not None and scan.score > 0.9
    assert with_model.heavy  # a model runs in the worker pool, under the policy timeout


def test_a_missing_or_malformed_model_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no model file"):
        OnnxClassifier(ClassifierConfig(path=str(tmp_path / "absent.onnx")))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot load"):
        OnnxClassifier(ClassifierConfig(path=str(bad)))
