"""``judge``: a model grades the output against a rubric, on an integer scale.

A judge is only as trustworthy as its prompt and its parser, so prompts are
versioned (the verdict records which one scored it; change a prompt by adding
a version, never by editing one) and output is parsed strictly: anything but
one JSON object with an integer ``score`` inside the scale is a recorded
error, not a zero. ``pilothouse eval calibrate`` measures the judge against
human labels.
"""

from __future__ import annotations

import hashlib
import statistics
from pathlib import Path
from typing import Any

import jinja2
import msgspec
import orjson

from pilothouse.evals.errors import EvalError, ScoreError, TargetUnavailable
from pilothouse.evals.model import Case, Verdict
from pilothouse.evals.scorers.base import ChatReply, ScoreContext, Scorer, ScorerConfig
from pilothouse.evals.scorers.judge_prompts import PROMPTS, JudgePrompt
from pilothouse.evals.scorers.text import preview


class JudgeConfig(ScorerConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    model: str
    rubric: str
    scale: list[int] = msgspec.field(default_factory=lambda: [1, 5])
    pass_at: int | None = None
    prompt: str = "rubric@1"
    samples: int = 1
    temperature: float = 0.0
    max_tokens: int = 256
    structured: bool = True

    def __post_init__(self) -> None:
        if len(self.scale) != 2 or self.scale[0] >= self.scale[1]:
            raise ValueError("scale must be [low, high] with low < high, e.g. [1, 5]")
        if self.pass_at is not None and not self.scale[0] <= self.pass_at <= self.scale[1]:
            raise ValueError(f"pass_at {self.pass_at} is outside the scale {self.scale}")
        if self.samples < 1:
            raise ValueError("samples must be >= 1")
        if self.samples > 1 and self.temperature == 0:
            raise ValueError("samples > 1 needs temperature > 0 (identical samples add nothing)")


def parse_verdict(text: str, low: int, high: int) -> tuple[int, str]:
    """The judge's (score, reason); :class:`ScoreError` for anything else.

    Accepted: exactly one JSON object, optionally inside one code fence, with
    an integer ``score`` in [low, high] and an optional string ``reason``.
    """
    body = text.strip()
    if body.startswith("```") and body.endswith("```") and body.count("```") == 2:
        body = body[3:-3].removeprefix("json").strip()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ScoreError(f"judge output is not a JSON object: {preview(text, 160)!r}") from None
    if not isinstance(data, dict):
        raise ScoreError(f"judge output is JSON but not an object: {preview(text, 160)!r}")
    score = data.get("score")
    if isinstance(score, float) and score.is_integer():
        score = int(score)
    if not isinstance(score, int) or isinstance(score, bool):
        raise ScoreError(f"judge output has no integer `score`: {preview(text, 160)!r}")
    if not low <= score <= high:
        raise ScoreError(f"judge score {score} is outside the scale {low}..{high}")
    reason = data.get("reason", "")
    if not isinstance(reason, str):
        raise ScoreError("judge `reason` must be a string")
    return score, reason


def load_prompt(spec: str, base_dir: Path) -> JudgePrompt:
    """A built-in prompt by id (``rubric@1``) or a template file (``file:path.j2``)."""
    if spec.startswith("file:"):
        path = base_dir / spec[5:]
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read judge prompt {path}: {exc.strerror or exc}") from None
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        return JudgePrompt(id=f"{spec}#{digest}", system="", user=text)
    if spec not in PROMPTS:
        raise ValueError(f"unknown judge prompt {spec!r} (known: {', '.join(sorted(PROMPTS))})")
    return PROMPTS[spec]


class JudgeScorer(Scorer[JudgeConfig]):
    config_type = JudgeConfig
    needs_gateway = True

    def __init__(self, config: JudgeConfig, base_dir: Path) -> None:
        super().__init__(config, base_dir)
        self.prompt = load_prompt(config.prompt, base_dir)
        env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined)  # noqa: S701 - prompts are not HTML
        try:
            self.template = env.from_string(self.prompt.user)
        except jinja2.TemplateError as exc:
            raise ValueError(f"judge prompt {self.prompt.id}: {exc}") from None
        self.low, self.high = config.scale
        self.pass_at = config.pass_at if config.pass_at is not None else self.high

    def messages(self, case: Case, output: str) -> list[dict[str, Any]]:
        expected = case.expected
        user = self.template.render(
            rubric=self.config.rubric,
            input=case.prompt_text(),
            expected=""
            if expected is None
            else (expected if isinstance(expected, str) else orjson.dumps(expected).decode()),
            context=case.context
            if isinstance(case.context, str)
            else "\n".join(case.context or []),
            output=output,
            low=self.low,
            high=self.high,
        )
        system = [{"role": "system", "content": self.prompt.system}] if self.prompt.system else []
        return [*system, {"role": "user", "content": user}]

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
        }
        if self.config.structured:
            params["response_format"] = _response_format(self.low, self.high)
        return params

    async def evaluate(self, case: Case, output: str, ctx: ScoreContext) -> Verdict:
        if ctx.chat is None:
            return self.error("judge scorers need a gateway (use --config or --base-url)")
        messages = self.messages(case, output)
        detail: dict[str, Any] = {
            "prompt": self.prompt.id,
            "model": self.config.model,
            "scale": [self.low, self.high],
            "pass_at": self.pass_at,
        }
        scores: list[int] = []
        reasons: list[str] = []
        for index in range(self.config.samples):
            try:
                reply = await self._ask(messages, index, ctx)
            except TargetUnavailable:
                raise
            except EvalError as exc:
                return self.error(f"judge call failed: {exc.message}", detail)
            detail.setdefault("raw", []).append(reply.text[:500])
            if reply.request_id:
                # A cached answer cost nothing this run: keep its id apart from spend.
                kind = "cached_request_ids" if reply.cached else "request_ids"
                detail.setdefault(kind, []).append(reply.request_id)
            try:
                score, reason = parse_verdict(reply.text, self.low, self.high)
            except ScoreError as exc:
                return self.error(exc.message, detail)
            scores.append(score)
            reasons.append(reason)
        return self._combine(scores, reasons, detail)

    def _combine(self, scores: list[int], reasons: list[str], detail: dict[str, Any]) -> Verdict:
        score = statistics.median_low(scores)
        passed = score >= self.pass_at
        detail["scores"] = scores
        detail["unanimous"] = len({s >= self.pass_at for s in scores}) == 1
        reason = reasons[scores.index(score)]
        return self.verdict(
            passed,
            value=float(score),
            explanation=f"{score}/{self.high}: {reason}" if reason else f"{score}/{self.high}",
            expected=f">= {self.pass_at} on {self.low}..{self.high}: {self.config.rubric}",
            detail=detail,
        )

    async def _ask(
        self, messages: list[dict[str, Any]], index: int, ctx: ScoreContext
    ) -> ChatReply:
        assert ctx.chat is not None
        params = self.params()
        key = hashlib.sha256(
            orjson.dumps(
                {
                    "judge": self.config.model,
                    "gateway": ctx.model_fingerprint(self.config.model)
                    if ctx.model_fingerprint
                    else "",
                    "prompt": self.prompt.id,
                    "messages": messages,
                    "params": params,
                    "sample": index,
                },
                option=orjson.OPT_SORT_KEYS,
            )
        ).hexdigest()
        if ctx.cache_get is not None:
            hit = await ctx.cache_get(key)
            if hit is not None and isinstance(hit.get("text"), str):
                return ChatReply(text=hit["text"], request_id=hit.get("request_id"), cached=True)
        reply = await ctx.chat(self.config.model, messages, params)
        if ctx.cache_put is not None:
            ctx.cache_put(
                key, {"kind": "judge", "text": reply.text, "request_id": reply.request_id}
            )
        return reply


def _response_format(low: int, high: int) -> dict[str, Any]:
    """Ask for the verdict JSON; llama.cpp turns this into a grammar, others into JSON mode."""
    score: dict[str, Any] = {"type": "integer"}
    if high - low <= 20:
        score["enum"] = list(range(low, high + 1))
    else:
        score.update(minimum=low, maximum=high)
    schema = {
        "type": "object",
        "properties": {"score": score, "reason": {"type": "string", "maxLength": 160}},
        "required": ["score", "reason"],
    }
    return {"type": "json_schema", "json_schema": {"name": "judge_verdict", "schema": schema}}
