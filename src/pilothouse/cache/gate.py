"""The content gate: a near neighbour is only an answer if the questions agree on content.

Embeddings put a question and its negation (or its reversed relation, or the
same question about another city or number) within a hair of each other, so no
similarity threshold separates them. The gate compares what decides the answer
— negations, numbers with their units, named entities, content words and their
order around relation words — and refuses on any disagreement. Verifiers
(e.g. a cross-encoder) are plugins registered by name and run after it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from pilothouse.errors import ConfigError

NEGATIONS = frozenset(
    [
        "not",
        "no",
        "never",
        "none",
        "nobody",
        "nothing",
        "nowhere",
        "neither",
        "nor",
        "without",
        "cannot",
        "cant",
        "dont",
        "doesnt",
        "isnt",
        "arent",
        "wasnt",
        "werent",
        "wont",
        "shouldnt",
        "couldnt",
        "wouldnt",
        "didnt",
        "hasnt",
        "havent",
        "hadnt",
        "mustnt",
        "neednt",
        "except",
        "excluding",
        "unless",
    ]
)
# Words that only frame a question; two paraphrases may differ in them freely.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "in",
        "on",
        "at",
        "for",
        "with",
        "about",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "am",
        "do",
        "does",
        "did",
        "doing",
        "done",
        "have",
        "has",
        "had",
        "having",
        "i",
        "me",
        "my",
        "mine",
        "we",
        "our",
        "us",
        "you",
        "your",
        "yours",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "please",
        "tell",
        "explain",
        "show",
        "give",
        "know",
        "let",
        "get",
        "way",
        "ways",
        "some",
        "any",
        "something",
        "anything",
        "thing",
        "things",
        "possible",
        "really",
        "actually",
        "just",
        "kind",
        "sort",
        "need",
        "want",
        "like",
        "help",
        "if",
        "so",
        "then",
        "than",
        "also",
        "too",
        "very",
        "much",
        "many",
        "more",
        "most",
        "is",
        "there",
        "whats",
        "hows",
        "anyone",
        "someone",
        "describe",
        "mean",
        "means",
        "meaning",
        "go",
        "going",
        "one",
    ]
)
# Direction words that flip a phrasal verb's meaning even though they look like filler.
PARTICLES = frozenset(["off", "out", "up", "down"])
# Words two paraphrases commonly swap for one another (folded before comparing).
SYNONYMS = {
    "larger": "bigger", "quicker": "faster", "higher": "taller", "sufficient": "enough",
    "baggage": "luggage", "each": "per", "into": "to", "during": "in", "founder": "found",
    "purchase": "buy", "acquired": "acquire", "begin": "start", "finish": "end",
}  # fmt: skip
# After these words the next content word is one side of a relation: both must name the same.
RELATION_WORDS = frozenset(
    ["than", "to", "from", "into", "vs", "versus", "over", "before", "after", "by", "per"]
)
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
        ]
    )
}
_NUM = re.compile(r"(?<![a-z0-9])(\d+(?:[.,]\d+)*)\s*(%|°\s?[cf]\b|[a-z]+)?")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_UNIT_ALIASES = {
    "kilometers": "km", "kilometres": "km", "kilometer": "km", "kilometre": "km",
    "miles": "mi", "mile": "mi", "meters": "m", "metres": "m", "meter": "m", "metre": "m",
    "kilograms": "kg", "kilogram": "kg", "kilos": "kg", "pounds": "lb", "pound": "lb",
    "lbs": "lb", "grams": "g", "gram": "g", "hours": "h", "hour": "h", "hrs": "h",
    "minutes": "min", "minute": "min", "mins": "min", "seconds": "s", "second": "s",
    "secs": "s", "days": "d", "day": "d", "weeks": "wk", "week": "wk", "years": "y",
    "year": "y", "percent": "%", "dollars": "usd", "dollar": "usd", "euros": "eur",
    "euro": "eur", "gigabytes": "gb", "megabytes": "mb", "liters": "l", "litres": "l",
    "liter": "l", "litre": "l", "celsius": "c", "fahrenheit": "f", "inches": "in",
    "inch": "in", "feet": "ft", "foot": "ft", "gallons": "gal", "gallon": "gal",
}  # fmt: skip


_UNITS = (
    frozenset(_UNIT_ALIASES)
    | frozenset(_UNIT_ALIASES.values())
    | frozenset(
        [
            "ms",
            "kb",
            "tb",
            "px",
            "cm",
            "mm",
            "ft",
            "yd",
            "oz",
            "mph",
            "kph",
            "kmh",
            "usd",
            "gbp",
            "jpy",
            "am",
            "pm",
            "gb",
            "mb",
        ]
    )
)


def _unit(word: str) -> str:
    """A word after a number counts as its unit only when it is one (km, hours, %)."""
    word = word.replace(" ", "").replace("°", "")
    return _UNIT_ALIASES.get(word, word) if word in _UNITS or word == "%" else ""


def _stem(word: str) -> str:
    for suffix in ("ing", "ies", "es", "ed", "ly", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


@dataclass(frozen=True, slots=True)
class Features:
    negations: int
    numbers: frozenset[tuple[str, str]]
    entities: frozenset[str]
    content: tuple[str, ...]  # stems, in order
    relations: frozenset[tuple[str, str]]
    particles: frozenset[str] = frozenset()


EntityFinder = Callable[[str], frozenset[str]]


def _heuristic_entities(text: str) -> frozenset[str]:
    """Capitalised or all-caps tokens that do not open a sentence: names, places, products."""
    found = set()
    for sentence in re.split(r"[.!?]\s+", text):
        tokens = re.findall(r"[A-Za-z][\w.&-]*", sentence)
        for i, tok in enumerate(tokens):
            named = (
                (tok.isupper() and len(tok) > 1)
                or (i > 0 and tok[0].isupper())
                or any(c.isupper() for c in tok[1:])  # iOS, eBay, PostgreSQL
            )
            if named and tok.lower() not in STOPWORDS and tok != "I":
                found.add(tok.lower())
    return frozenset(found)


@lru_cache(maxsize=1)
def _spacy() -> Any:
    """spaCy's small English model when it is installed (offline); None otherwise."""
    try:
        import spacy

        return spacy.load("en_core_web_sm", disable=["parser", "lemmatizer"])
    except Exception:  # not installed, or its data missing: the heuristic takes over
        return None


def entity_finder(prefer_spacy: bool = True) -> EntityFinder:
    nlp = _spacy() if prefer_spacy else None
    if nlp is None:
        return _heuristic_entities

    def find(text: str) -> frozenset[str]:
        ents = {e.text.lower() for e in nlp(text).ents if e.label_ not in {"CARDINAL", "QUANTITY"}}
        return frozenset(ents) | _heuristic_entities(text)

    return find


def features(text: str, entities: EntityFinder = _heuristic_entities) -> Features:
    lowered = text.lower().replace("\u2019", "'")
    words = [w.replace("'", "") for w in _WORD.findall(lowered)]
    words = [SYNONYMS.get(w, w) for w in words]
    negations = sum(1 for w in words if w in NEGATIONS)
    numbers = set()
    for m in _NUM.finditer(lowered):
        numbers.add((m.group(1).replace(",", ""), _unit(m.group(2) or "")))
    for i, w in enumerate(words):
        if w in _NUMBER_WORDS and i + 1 < len(words):
            nxt = words[i + 1]
            numbers.add((_NUMBER_WORDS[w], _unit(nxt)))
    content = tuple(
        _stem(w) for w in words if w not in STOPWORDS and w not in NEGATIONS and len(w) > 1
    )
    relations = set()
    for i, w in enumerate(words[:-1]):
        if w in RELATION_WORDS:
            nxt = next((x for x in words[i + 1 :] if x not in STOPWORDS), None)
            if nxt is not None:
                relations.add((w, _stem(_UNIT_ALIASES.get(nxt, nxt))))
    particles = frozenset(w for w in words if w in PARTICLES)
    for w in words:  # a unit named without a number still decides the answer (a pound of ...)
        if len(w) > 2 and w in _UNIT_ALIASES:
            numbers.add(("", _UNIT_ALIASES[w]))
    return Features(
        negations, frozenset(numbers), entities(text), content, frozenset(relations), particles
    )


def _order_agrees(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Shared content words appear in the same order (a reversed relation does not)."""
    shared = [w for w in dict.fromkeys(a) if w in set(b)]
    if len(shared) < 2:
        return True
    pos_b = {w: b.index(w) for w in shared}
    pos_a = {w: a.index(w) for w in shared}
    pairs = [(x, y) for i, x in enumerate(shared) for y in shared[i + 1 :]]
    discordant = sum(1 for x, y in pairs if (pos_a[x] - pos_a[y]) * (pos_b[x] - pos_b[y]) < 0)
    return discordant * 2 < len(pairs) or discordant == 0


@dataclass(frozen=True, slots=True)
class GateResult:
    ok: bool
    reason: str  # the first disagreement, or "agree"


def compare(a: Features, b: Features, min_overlap: float = 0.5) -> GateResult:
    if a.negations != b.negations:
        return GateResult(False, "negation")
    if a.numbers != b.numbers:
        return GateResult(False, "numbers")
    if a.entities != b.entities:
        return GateResult(False, "entities")
    if {r for r in a.relations if r[0] in {w for w, _ in b.relations}} != {
        r for r in b.relations if r[0] in {w for w, _ in a.relations}
    }:
        return GateResult(False, "relation")
    sa, sb = set(a.content), set(b.content)
    if (sa - sb) and (sb - sa):  # open/close, free/paid, dog/cat: one word swapped for another
        return GateResult(False, "substitution")
    if a.particles != b.particles:  # turn on / turn off, log in / log out
        return GateResult(False, "particle")
    if sa or sb:
        overlap = len(sa & sb) / len(sa | sb)
        if overlap < min_overlap:
            return GateResult(False, "content")
    if not _order_agrees(a.content, b.content):
        return GateResult(False, "order")
    return GateResult(True, "agree")


class Verifier(Protocol):
    """A second opinion on a candidate hit (e.g. a cross-encoder): True means same answer."""

    async def verify(self, query: str, candidate: str) -> bool: ...


_VERIFIERS: dict[str, Callable[[], Verifier]] = {}


def register_verifier(name: str) -> Callable[[Callable[[], Verifier]], Callable[[], Verifier]]:
    def add(factory: Callable[[], Verifier]) -> Callable[[], Verifier]:
        _VERIFIERS[name] = factory
        return factory

    return add


def verifier(name: str) -> Verifier:
    try:
        return _VERIFIERS[name]()
    except KeyError:
        known = ", ".join(sorted(_VERIFIERS)) or "none registered"
        raise ConfigError(f"unknown semantic cache verifier {name!r} (known: {known})") from None


@register_verifier("content-overlap")
class StrictOverlapVerifier:
    """A stricter built-in second pass: content words must overlap by at least 70%."""

    async def verify(self, query: str, candidate: str) -> bool:
        return compare(features(query), features(candidate), min_overlap=0.7).ok
