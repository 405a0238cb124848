# ruff: noqa: E501, RUF001
"""The injection guard: normalise, score patterns and heuristics, optionally ask a model.

Scores combine as independent evidence, ``1 - Π(1 - w)``. A phrase found only
after decoding a payload scores higher than the same phrase in the clear
(hiding it is itself evidence). Untrusted segments (tool results, retrieved
documents) also match the indirect rules (text addressing the assistant,
exfiltration requests) and are judged against a stricter threshold by the engine.
A phrase inside quotes in a question about attacks counts for less, so users
can still talk about prompt injection.
"""

from __future__ import annotations

import re
from typing import Any

from pilothouse.guard.base import Finding, GuardContext, Scan, Segment
from pilothouse.guard.classifier import build_classifier
from pilothouse.guard.config import GuardSpec
from pilothouse.guard.normalize import normalize

_PREV = r"(?:previous|prior|above|earlier|preceding|former|initial|original|all|any|your|the|system|these|those)"
_INSTR = r"(?:instructions?|prompts?|rules|directions|directives|guidelines|context|constraints|programming|orders)"
DIRECT: tuple[tuple[str, float], ...] = (
    (rf"\b(?:ignore|disregard|forget|override|skip|bypass|drop|abandon|discard|neglect)\b(?:\W+\w+){{0,3}}?\W+{_PREV}\W+(?:\w+\W+){{0,2}}{_INSTR}", 0.9),
    (r"\b(?:you are|you're|act as|behave as|pretend (?:to be|you are)|roleplay as)\b.{0,40}\b(?:DAN|unrestricted|unfiltered|uncensored|jailbroken|evil|no (?:rules|limits|restrictions|filters)|without (?:any )?(?:rules|limits|restrictions|filters|guidelines))", 0.85),
    (r"\b(?:do anything now|developer mode|jailbreak(?:ed)? mode|god mode|dan mode)\b", 0.7),
    (r"\b(?:reveal|print|show|repeat|output|leak|display|tell me|give me|write out|dump)\b.{0,30}\b(?:system prompt|initial (?:prompt|instructions)|hidden (?:prompt|instructions)|your (?:prompt|instructions|rules|guidelines)|the text above|everything above)", 0.85),
    (r"\b(?:new|updated|real|actual|true) (?:system )?instructions?\s*[:\-]", 0.6),
    (r"\b(?:system|admin|developer|root) (?:override|mode|access) (?:enabled|activated|granted|on)\b", 0.7),
    (r"(?:<\|im_start\|>|<\|system\|>|\[INST\]|\[/INST\]|<<SYS>>|###\s*(?:system|instruction)\s*:)", 0.7),
    (r"\b(?:from now on|starting now|henceforth)\b.{0,40}\b(?:you (?:will|must|shall|are)|respond|answer|ignore)\b", 0.5),
    (r"\b(?:no longer|not) (?:bound|restricted|limited) by\b", 0.6),
    (r"\b(?:stop being|you are no longer) (?:an? )?(?:ai|assistant|chatbot|helpful)", 0.6),
    # Multilingual variants of "ignore the previous instructions".
    (r"\bignor[ae]\w*\b.{0,20}\b(?:instrucciones|instruções|istruzioni|instructions)\b.{0,20}\b(?:anteriores|precedenti|précédentes|previas)\b", 0.9),
    (r"\b(?:ignora|olvida)\b.{0,20}\b(?:las |todas las )?(?:instrucciones|reglas)\b", 0.85),
    (r"\b(?:ignorez|ignore|oublie[zr]?)\s+(?:les|toutes les|tes|vos)\s+(?:\w+\s+)?(?:instructions|consignes|règles)\b", 0.85),
    (r"\b(?:ignoriere|ignorieren sie|vergiss|vergessen sie)\b.{0,30}\b(?:anweisungen|instruktionen|regeln|vorgaben)\b", 0.9),
    (r"\b(?:ignora|dimentica)\b.{0,25}\b(?:istruzioni|regole)\b", 0.85),
    (r"\b(?:ignore|esqueça|esqueca)\b.{0,25}\b(?:instruções|instrucoes|regras)\b", 0.85),
    (r"(?:忽略|无视|忽视|忘记|不要理会).{0,10}(?:指令|指示|说明|规则|提示)", 0.9),
    (r"(?:以前|前|上記|これまで)の?(?:指示|命令|ルール).{0,6}(?:無視|忘れ)", 0.9),
    (r"(?:игнорируй|игнорировать|забудь|не обращай внимания на).{0,30}(?:инструкци|правил|указани)", 0.9),
    (r"\b(?:önceki|tüm) talimatları (?:yok say|görmezden gel|unut)", 0.9),
    (r"\b(?:zignoruj|pomiń|zapomnij)\b.{0,25}\b(?:instrukcje|polecenia|zasady)\b", 0.9),
    (r"\b(?:negeer|vergeet)\b.{0,25}\b(?:instructies|regels)\b", 0.9),
)  # fmt: skip
INDIRECT: tuple[tuple[str, float], ...] = (
    (r"\b(?:ai|assistant|model|chatbot|llm|gpt|claude|agent|bot)\b\s*[,:!]?\s*(?:please\s+)?(?:you must|you should|ignore|disregard|stop|instead|now|your new task|do not tell)", 0.75),
    (r"\b(?:when|if) (?:you|an? (?:ai|assistant|model|agent)) (?:read|see|process|summari[sz]e|encounter)s? this\b", 0.8),
    (r"\b(?:send|forward|email|post|upload|exfiltrate|transmit|leak|copy)\b.{0,40}\b(?:conversation|chat history|messages|user'?s? (?:data|emails?|password|details|information)|credentials|secrets?|api keys?|tokens?|passwords?|personal data|system prompt)\b.{0,40}\b(?:to|at|into)\b", 0.85),
    (r"!\[[^\]]*\]\(https?://[^)]*(?:\?|&)[a-z_]*=\s*(?:\{|\$|%7B)", 0.85),
    (r"\b(?:call|invoke|use|run|execute)\b.{0,20}\b(?:the )?(?:tool|function|plugin|api)\b.{0,40}\b(?:with|and send|to send|passing)\b", 0.5),
    (r"\b(?:important|attention|note to (?:the )?(?:ai|assistant|model)|instructions? for (?:the )?(?:ai|assistant|model))\s*[:!]", 0.5),
    (r"\b(?:do not|don't) (?:tell|inform|mention|reveal to|alert) the user\b", 0.8),
    (r"\byour (?:new|real|actual|true) (?:task|goal|objective|instructions?|purpose) (?:is|are)\b", 0.8),
    (r"\b(?:visit|open|navigate to|browse to|fetch)\b.{0,20}https?://\S+.{0,40}\b(?:and|then)\b.{0,30}\b(?:enter|paste|submit|include|append)\b", 0.6),
)  # fmt: skip
_QUESTIONY = re.compile(
    r"\b(?:what (?:is|are|does)|explain|example|examples|meaning|means|definition|attack|"
    r"research|paper|detect|defen[cs]e|protect|classif|in quotes|phrase|how do (?:i|you) handle|"
    r"git|gitignore|css|linter|compiler|warning|eslint|whitespace)\b",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"[\"'“”‘’«»`]")
ENCODED_BONUS = 0.25
OBFUSCATION_BONUS = 0.15


Rule = tuple[re.Pattern[str], re.Pattern[str] | None, float]
_ESCAPE = re.compile(r"\\.")


def _compile(rules: tuple[tuple[str, float], ...]) -> list[Rule]:
    """Each rule case-insensitive, and, when its source has no upper-case letter, also
    case-sensitive for matching lower-cased text (~40% cheaper than ``re.IGNORECASE``)."""
    out: list[Rule] = []
    for p, w in rules:
        lower = None
        if not re.search(r"[A-Z]", _ESCAPE.sub("", p)):
            lower = re.compile(p, re.DOTALL)
        out.append((re.compile(p, re.IGNORECASE | re.DOTALL), lower, w))
    return out


def combine(weights: list[float]) -> float:
    miss = 1.0
    for w in weights:
        miss *= 1.0 - min(max(w, 0.0), 1.0)
    return 1.0 - miss


class InjectionGuard:
    def __init__(self, spec: GuardSpec, ctx: GuardContext) -> None:
        self.spec = spec
        self.direct = ctx.resource("injection.direct", lambda: _compile(DIRECT))
        self.indirect = ctx.resource("injection.indirect", lambda: _compile(INDIRECT))
        self.classifier: Any = build_classifier(spec.classifier) if spec.classifier else None
        self.heavy = self.classifier is not None

    def _rules_score(self, text: str, untrusted: bool, quoted_discount: bool) -> float:
        weights: list[float] = []
        rules = self.direct + self.indirect if untrusted else self.direct
        low = text.lower()
        same = len(low) == len(text)  # offsets agree, so quote checks see the same spans
        for anycase, lowercase, weight in rules:
            m = lowercase.search(low) if same and lowercase is not None else anycase.search(text)
            if m is None:
                continue
            if quoted_discount and _inside_quotes(text, m.start(), m.end()):
                weight *= 0.35
            weights.append(weight)
        return combine(weights)

    def score(self, text: str, untrusted: bool) -> float:
        norm = normalize(text)
        discount = not untrusted and _QUESTIONY.search(norm.text) is not None
        best = self._rules_score(norm.text, untrusted, discount)
        for how, view in norm.views:
            s = self._rules_score(view, untrusted, discount and how == "rot13")
            if (s > 0 and how != "rot13") or s >= 0.85:
                best = max(best, combine([s, ENCODED_BONUS]))
        if best > 0 and norm.obfuscated:
            best = combine([best, OBFUSCATION_BONUS])
        if self.classifier is not None:
            best = max(best, self.classifier.score(norm.text))
        return best

    def scan(self, segment: Segment) -> Scan:
        score = self.score(segment.text, segment.untrusted)
        threshold = self.spec.threshold if self.spec.threshold is not None else 0.5
        if segment.untrusted:
            threshold = min(threshold, 0.4)
        findings = []
        if score >= threshold:
            findings.append(Finding("PROMPT_INJECTION", 0, len(segment.text), score))
        return Scan(findings, round(score, 3))


def _inside_quotes(text: str, start: int, end: int) -> bool:
    before = text[max(0, start - 3) : start]
    after = text[end : end + 3]
    return bool(_QUOTED.search(before)) and bool(
        _QUOTED.search(after) or _QUOTED.search(text[end:])
    )
