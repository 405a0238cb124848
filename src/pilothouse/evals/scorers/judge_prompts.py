"""Versioned judge prompts. Never edit a published version: add ``name@N+1``.

A verdict records the prompt id that produced it, so a score can always be
traced to the exact wording the judge saw, and calibration results stay
attached to the prompt they measured.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class JudgePrompt:
    id: str
    system: str
    user: str  # Jinja2: rubric, input, expected, context, output, low, high


_RUBRIC_V1_SYSTEM = (
    "You are a careful, strict evaluator of AI assistant responses. "
    "You grade only what is asked in the rubric and reply with JSON only."
)

_RUBRIC_V1_USER = """\
Grade the RESPONSE to the INPUT using the RUBRIC.

RUBRIC: {{ rubric }}

INPUT:
{{ input }}
{% if expected %}
REFERENCE ANSWER (correct answer for comparison):
{{ expected }}
{% endif %}{% if context %}
CONTEXT (the sources the response may use):
{{ context }}
{% endif %}
RESPONSE:
{{ output }}

Give an integer score from {{ low }} (fails the rubric completely) to {{ high }} \
(fully satisfies the rubric).
Reply with only this JSON object and nothing else:
{"score": <integer {{ low }}-{{ high }}>, "reason": "<one short sentence>"}"""

PROMPTS: dict[str, JudgePrompt] = {
    "rubric@1": JudgePrompt(id="rubric@1", system=_RUBRIC_V1_SYSTEM, user=_RUBRIC_V1_USER),
}
