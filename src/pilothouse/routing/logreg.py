"""The ``logreg`` difficulty router: P(hard) from MiniLM embeddings, trained by
``pilothouse routing train`` (see :mod:`pilothouse.routing.train`).

The model file is read when the config is loaded; MiniLM is built on first
use and every embedding runs in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from pilothouse.errors import ConfigError
from pilothouse.routing.config import DifficultyConfig
from pilothouse.routing.difficulty import prompt_text, register


def load_model(path: str | None) -> dict[str, Any]:
    if not path:
        raise ConfigError(
            "the logreg difficulty router needs `path` (from `pilothouse routing train`)"
        )
    try:
        model: dict[str, Any] = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read difficulty router {path}: {exc}") from None
    if model.get("router") != "logreg" or not isinstance(model.get("weights"), list):
        raise ConfigError(f"{path} is not a logreg router file (pilothouse routing train)")
    return model


@register("logreg")
class LogregDifficulty:
    name = "logreg"

    def __init__(self, config: DifficultyConfig) -> None:
        model = load_model(config.path)
        self.weights = np.asarray(model["weights"], dtype=np.float32)
        self.bias = float(model["bias"])
        self.threshold = float(model.get("threshold", 0.5))
        self._encoder: Any = None
        self._lock = threading.Lock()

    def _encode(self, text: str) -> Any:
        with self._lock:  # one encoder, built once
            if self._encoder is None:
                from pilothouse.providers.minilm import MiniLM

                self._encoder = MiniLM()
            vectors, _tokens = self._encoder.encode([text])
        return vectors[0]

    def score_vector(self, vector: Any) -> float:
        z = float(np.dot(self.weights, vector)) + self.bias
        return 1.0 / (1.0 + math.exp(-z))

    async def score(self, body: dict[str, Any]) -> float:
        vector = await asyncio.to_thread(self._encode, prompt_text(body))
        return self.score_vector(vector)
