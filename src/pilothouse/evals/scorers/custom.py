"""``python``: a scorer written as a plain function, named ``"module:function"``.

The function declares what it wants by parameter name — any of ``output``,
``case``, ``expected``, ``input``, ``context``, ``metadata`` (or takes the
output positionally) — and returns a bool, a number, a dict with ``value``/
``passed``/``explanation``/``label``, a :class:`Verdict`, or ``None`` to say
"not applicable". It may be sync or async; an exception becomes a recorded
error on that case, never a silent fail.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pilothouse.evals.model import Case, Verdict
from pilothouse.evals.refs import accepted, call, keyword_args, resolve_ref
from pilothouse.evals.scorers.base import ScoreContext, Scorer, ScorerConfig

_NAMES = ("output", "case", "expected", "input", "context", "metadata")
_DICT_KEYS = frozenset(("value", "passed", "explanation", "label"))


class PythonConfig(ScorerConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    ref: str
    pass_at: float = 0.5


class PythonScorer(Scorer[PythonConfig]):
    config_type = PythonConfig

    def __init__(self, config: PythonConfig, base_dir: Path) -> None:
        super().__init__(config, base_dir)
        self.fn: Callable[..., Any] = resolve_ref(config.ref, base_dir, what="scorer ref")
        positional, names, _ = accepted(self.fn)
        self.by_name = bool(names & set(_NAMES))
        self.positional = positional

    async def evaluate(self, case: Case, output: str, ctx: ScoreContext) -> Verdict:
        available = {
            "output": output,
            "case": case,
            "expected": case.expected,
            "input": case.input,
            "context": case.context,
            "metadata": case.metadata,
        }
        try:
            if self.by_name:
                result = await call(self.fn, **keyword_args(self.fn, available))
            else:
                args = (output, case)[: max(self.positional, 1)]
                result = await call(self.fn, *args)
        except Exception as exc:
            return self.error(f"{self.config.ref} raised {type(exc).__name__}: {exc}")
        return self.coerce(result)

    def coerce(self, result: Any) -> Verdict:
        if result is None:
            return self.skip(f"{self.config.ref} returned None")
        if isinstance(result, Verdict):
            result.scorer = self.name
            return result
        if isinstance(result, bool):
            return self.verdict(result)
        if isinstance(result, int | float):
            if not math.isfinite(result):
                return self.error(f"{self.config.ref} returned {result!r}, not a finite number")
            return self.verdict(result >= self.config.pass_at, value=float(result))
        if isinstance(result, dict):
            return self._from_dict(result)
        return self.error(
            f"{self.config.ref} returned {type(result).__name__}; expected bool, number, "
            "dict or None"
        )

    def _from_dict(self, result: dict[str, Any]) -> Verdict:
        unknown = set(result) - _DICT_KEYS
        if unknown:
            return self.error(f"{self.config.ref} returned unknown keys {sorted(unknown)}")
        value = result.get("value")
        passed = result.get("passed")
        if passed is None and isinstance(value, int | float):
            passed = value >= self.config.pass_at
        if not isinstance(passed, bool):
            return self.error(f"{self.config.ref} returned no `passed` and no numeric `value`")
        return self.verdict(
            passed,
            value=float(value) if isinstance(value, int | float) else None,
            explanation=str(result.get("explanation") or ""),
            label=result.get("label"),
        )
