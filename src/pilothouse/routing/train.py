"""Train the ``logreg`` difficulty router from two eval runs of one suite (cheap, strong).

A case is *hard* when the cheap alias scored below the strong one on it. A
small L2-regularised logistic regression (Newton steps in NumPy; scikit-learn
is not a dependency) learns P(hard) from MiniLM embeddings of the case input
on a training split. On the held-out cases the threshold ``t`` is the largest
one whose routing — cheap when P(hard) < t, strong otherwise — keeps the
paired-bootstrap *lower* 95% bound of quality / strong quality at or above
the target share, so the guarantee is stated with its uncertainty, not just a
point estimate. The cheap share comes with a Wilson interval.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pilothouse.evals.errors import EvalError
from pilothouse.evals.model import RunRecord, Sample

Array = npt.NDArray[np.float64]
Embed = Callable[[Sequence[str]], Array]


@dataclass(frozen=True)
class Pair:
    case_id: str
    text: str
    cheap: float
    strong: float

    @property
    def hard(self) -> bool:
        return self.cheap < self.strong


def case_text(case_input: Any) -> str:
    if isinstance(case_input, str):
        return case_input
    parts = []
    for message in case_input or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str) and message.get("role") in ("user", "system"):
            parts.append(content)
    return "\n".join(parts)


def _quality(samples: list[Sample], scorer: str) -> float | None:
    values = []
    for sample in samples:
        verdict = sample.verdict(scorer)
        if verdict is None or verdict.error or verdict.skipped:
            continue
        if verdict.value is not None:
            values.append(float(verdict.value))
        elif verdict.passed is not None:
            values.append(1.0 if verdict.passed else 0.0)
    return sum(values) / len(values) if values else None


def pairs(cheap: RunRecord, strong: RunRecord, scorer: str | None) -> tuple[list[Pair], str]:
    """Cases both runs scored, with each alias's quality (mean over repeats) on them."""
    if cheap.info.suite != strong.info.suite:
        raise EvalError(
            f"the runs are of different suites ({cheap.info.suite!r}, {strong.info.suite!r})"
        )
    name = scorer or (cheap.info.scorers[0] if cheap.info.scorers else None)
    if name is None or name not in strong.info.scorers:
        raise EvalError(f"scorer {name!r} is not in both runs (give --scorer)")
    a, b = cheap.by_case(), strong.by_case()
    out = []
    for case_id, case in cheap.cases.items():
        qa, qb = _quality(a.get(case_id, []), name), _quality(b.get(case_id, []), name)
        if qa is not None and qb is not None:
            out.append(Pair(case_id, case_text(case.input), qa, qb))
    return out, name


def fit_logistic(x: Array, y: Array, l2: float = 1.0, steps: int = 25) -> tuple[Array, float]:
    """Weights and bias of an L2-regularised logistic regression (bias not penalised)."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    penalty = np.full(d + 1, l2)
    penalty[-1] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(xb @ w)))
        grad = xb.T @ (p - y) + penalty * w
        hess = (xb.T * (p * (1 - p))) @ xb + np.diag(penalty) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    return w[:-1], float(w[-1])


def predict(x: Array, weights: Array, bias: float) -> Array:
    out: Array = 1.0 / (1.0 + np.exp(-(x @ weights + bias)))
    return out


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def quality_share(
    held: list[Pair], probs: Array, t: float, resamples: int, seed: int
) -> tuple[float, float, float]:
    """Routed quality / strong quality on ``held``: point and paired-bootstrap 95% interval."""
    routed = np.array([p.cheap if pr < t else p.strong for p, pr in zip(held, probs, strict=True)])
    strong = np.array([p.strong for p in held])

    def share(idx: Any) -> float:
        total = float(strong[idx].sum())
        return float(routed[idx].sum()) / total if total > 0 else 1.0

    rng = np.random.default_rng(seed)
    n = len(held)
    boots = sorted(share(rng.integers(0, n, n)) for _ in range(resamples))
    return share(slice(None)), boots[int(0.025 * resamples)], boots[int(0.975 * resamples) - 1]


def train(
    cheap: RunRecord,
    strong: RunRecord,
    embed: Embed,
    *,
    scorer: str | None = None,
    target: float = 0.95,
    holdout: float = 0.3,
    l2: float = 1.0,
    seed: int = 0,
    resamples: int = 1000,
) -> dict[str, Any]:
    """The trained router (weights, bias, threshold) and its held-out report."""
    data, name = pairs(cheap, strong, scorer)
    if len(data) < 10:
        raise EvalError(f"only {len(data)} cases were scored in both runs; need at least 10")
    order = list(range(len(data)))
    random.Random(seed).shuffle(order)
    n_held = max(5, int(len(data) * holdout))
    held = [data[i] for i in order[:n_held]]
    fit = [data[i] for i in order[n_held:]]
    x = np.asarray(embed([p.text for p in data]), dtype=np.float64)
    x_fit, x_held = x[order[n_held:]], x[order[:n_held]]
    y = np.array([1.0 if p.hard else 0.0 for p in fit])
    weights, bias = fit_logistic(x_fit, y, l2=l2)
    probs = predict(x_held, weights, bias)
    best: dict[str, Any] | None = None
    for t in sorted({0.0, *map(float, probs), 1.0 + 1e-9}):
        point, low, high = quality_share(held, probs, t, resamples, seed)
        if low >= target:
            cheap_n = int((probs < t).sum())
            best = {"threshold": t, "quality_share": point, "ci": [low, high], "cheap": cheap_n}
    if best is None:  # not even all-strong clears the bound (ties): route everything strong
        point, low, high = quality_share(held, probs, 0.0, resamples, seed)
        best = {"threshold": 0.0, "quality_share": point, "ci": [low, high], "cheap": 0}
    cheap_share = best["cheap"] / len(held)
    lo, hi = wilson(best["cheap"], len(held))
    strong_mean = sum(p.strong for p in held) / len(held)
    return {
        "router": "logreg",
        "embedder": "minilm",
        "weights": [float(w) for w in weights],
        "bias": bias,
        "threshold": min(best["threshold"], 1.0),
        "report": {
            "suite": cheap.info.suite,
            "cheap_run": cheap.info.id,
            "strong_run": strong.info.id,
            "scorer": name,
            "cases": len(data),
            "train_cases": len(fit),
            "held_out_cases": len(held),
            "hard_share_train": float(y.mean()) if len(y) else 0.0,
            "target_quality_share": target,
            "quality_share": round(best["quality_share"], 4),
            "quality_share_ci95": [round(v, 4) for v in best["ci"]],
            "cheap_share": round(cheap_share, 4),
            "cheap_share_ci95": [round(lo, 4), round(hi, 4)],
            "strong_quality": round(strong_mean, 4),
            "cheap_quality": round(sum(p.cheap for p in held) / len(held), 4),
        },
    }
