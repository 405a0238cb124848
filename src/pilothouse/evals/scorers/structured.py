"""``json_schema``: is the output JSON that satisfies a schema (and the expected fields)?

Models often wrap JSON in a code fence or a sentence; with ``extract`` (the
default) the first JSON value in the text is used, and the verdict says so.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from pilothouse.evals.model import Case, Verdict
from pilothouse.evals.scorers.base import ScoreContext, Scorer, ScorerConfig
from pilothouse.evals.scorers.text import normalise, preview

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


class JsonSchemaConfig(ScorerConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    schema: dict[str, Any] = {}
    extract: bool = True
    match_expected: bool = False

    def __post_init__(self) -> None:
        try:
            jsonschema.Draft202012Validator.check_schema(self.schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"invalid JSON schema: {exc.message}") from None


def extract_json(text: str, *, lenient: bool) -> tuple[Any, str]:
    """Parse ``text`` as JSON; leniently, also a fenced block or the first embedded value.

    Returns (value, how it was found). Raises ``ValueError`` when there is none.
    """
    stripped = text.strip()
    try:
        return orjson.loads(stripped), "whole output"
    except orjson.JSONDecodeError as exc:
        if not lenient:
            raise ValueError(f"output is not JSON ({exc})") from None
    fence = _FENCE.search(text)
    if fence:
        try:
            return orjson.loads(fence.group(1).strip()), "code fence"
        except orjson.JSONDecodeError:
            pass
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _end = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        return value, "embedded in text"
    raise ValueError("no JSON value found in the output")


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, bool) or isinstance(got, bool):
        return expected is got
    if isinstance(expected, int | float) and isinstance(got, int | float | str):
        return _as_number(got) == float(expected)  # "41" for 41 is the right value
    if isinstance(expected, str) and isinstance(got, str | int | float):
        return normalise(expected) == normalise(str(got))
    if isinstance(expected, dict) and isinstance(got, dict):
        return all(k in got and _same(v, got[k]) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(got, list):
        return len(expected) == len(got) and all(map(_same, expected, got))
    return bool(expected == got)


def _as_number(value: int | float | str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


class JsonSchemaScorer(Scorer[JsonSchemaConfig]):
    config_type = JsonSchemaConfig

    def __init__(self, config: JsonSchemaConfig, base_dir: Path) -> None:
        super().__init__(config, base_dir)
        self.validator = jsonschema.Draft202012Validator(config.schema)

    async def evaluate(self, case: Case, output: str, ctx: ScoreContext) -> Verdict:
        wanted = "JSON matching the schema"
        try:
            value, how = extract_json(output, lenient=self.config.extract)
        except ValueError as exc:
            return self.verdict(False, explanation=f"{exc}: {preview(output)!r}", expected=wanted)
        problems = sorted(self.validator.iter_errors(value), key=lambda e: list(e.path))
        if problems:
            first = problems[0]
            where = "/".join(str(p) for p in first.path) or "(root)"
            why = f"schema violation at {where}: {first.message}"
            return self.verdict(False, explanation=why, expected=wanted, detail={"found": how})
        if self.config.match_expected and isinstance(case.expected, dict):
            return self._fields(case.expected, value, how)
        return self.verdict(True, explanation=f"valid JSON ({how})", detail={"found": how})

    def _fields(self, expected: dict[str, Any], value: Any, how: str) -> Verdict:
        got = value if isinstance(value, dict) else {}
        wrong = [k for k, v in expected.items() if not (k in got and _same(v, got[k]))]
        share = (len(expected) - len(wrong)) / len(expected) if expected else 1.0
        shown = orjson.dumps(expected).decode()
        if not wrong:
            return self.verdict(
                True, value=share, explanation=f"all fields match ({how})", expected=shown
            )
        diffs = ", ".join(f"{k}: expected {expected[k]!r}, got {got.get(k)!r}" for k in wrong)
        return self.verdict(
            False,
            value=share,
            explanation=diffs,
            expected=shown,
            detail={"found": how, "wrong_fields": wrong},
        )
