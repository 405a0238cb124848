"""Optional model classifiers behind one interface, registered by ``classifier.type``.

``onnx``: a model file loaded from a local path (nothing is downloaded). Its
contract: one float32 input of shape ``[1, D]`` — hashed character-trigram
counts of the normalised text, L2-normalised — and one output whose last
value is the probability of an attack. Any model trained on those features
(a logistic regression exported with skl2onnx, a small MLP) fits.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from pilothouse.guard.config import ClassifierConfig


class TextClassifier(Protocol):
    def score(self, text: str) -> float: ...


def trigram_features(text: str, dim: int) -> list[float]:
    """Hashed character trigrams (crc32 mod dim), L2-normalised."""
    vec = [0.0] * dim
    low = f"  {text.lower()} "
    for i in range(len(low) - 2):
        vec[zlib.crc32(low[i : i + 3].encode()) % dim] += 1.0
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [v / norm for v in vec]


class OnnxClassifier:
    def __init__(self, config: ClassifierConfig) -> None:
        path = Path(config.path)
        if not path.is_file():
            raise ValueError(f"classifier.path: no model file at {path}")
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            raise ValueError(f"classifier.path: cannot load {path} as ONNX: {exc}") from None
        inp = self.session.get_inputs()[0]
        dim = inp.shape[-1]
        if not isinstance(dim, int):
            raise ValueError("classifier.path: the model input needs a fixed last dimension")
        self.input_name, self.dim = inp.name, dim
        self.weight = config.weight
        self._lock = threading.Lock()

    def score(self, text: str) -> float:
        import numpy as np

        features = np.asarray([trigram_features(text, self.dim)], dtype=np.float32)
        with self._lock:
            out = self.session.run(None, {self.input_name: features})[0]
        return float(np.asarray(out).reshape(-1)[-1]) * self.weight


CLASSIFIERS: dict[str, Callable[[ClassifierConfig], Any]] = {"onnx": OnnxClassifier}


def build_classifier(config: ClassifierConfig) -> TextClassifier:
    kind = config.type or "onnx"
    factory = CLASSIFIERS.get(kind)
    if factory is None:
        raise ValueError(f"classifier.type: unknown {kind!r}; known: {sorted(CLASSIFIERS)}")
    clf: TextClassifier = factory(config)
    return clf
