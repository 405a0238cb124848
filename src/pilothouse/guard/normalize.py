"""Normalisation before injection scoring: what an attacker hides, made visible.

Returns the text as a reader (or a model) would see it, plus decoded views of
payloads encoded to slip past patterns: base64, hex, rot13, URL encoding, and
text hidden in markup (HTML comments, invisible elements, alt/title text).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import unquote

_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad\u180e]")
# Homoglyphs NFKC leaves alone: Cyrillic and Greek letters that look Latin.
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁԛԝАВЕКМНОРСТУХІЈЅΑΒΕΖΗΙΚΜΝΟΡΤΥΧαορνιτκ",
    "aeopcyxijsdqwABEKMHOPCTYXIJSABEZHIKMNOPTYXaopvitk",
)
_B64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
_HEX = re.compile(r"(?<![0-9a-fA-F])(?:[0-9a-fA-F]{2}[\s:]?){12,}(?![0-9a-fA-F])")
_URLENC = re.compile(r"(?:%[0-9a-fA-F]{2}[^%\s]{0,3}){4,}")
_HIDDEN = re.compile(
    r"<!--([\s\S]*?)-->|<[^>]+(?:display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0)"
    r"[^>]*>([\s\S]*?)</|(?:alt|title|aria-label)\s*=\s*\"([^\"]{8,})\"",
    re.IGNORECASE,
)
_TAGS = re.compile(r"<[^>]{1,200}>")


@dataclass(slots=True)
class Normalized:
    text: str  # the visible text, de-obfuscated
    views: list[tuple[str, str]] = field(default_factory=list)  # (how, decoded text)
    obfuscated: bool = False  # invisible characters or homoglyphs were present


def _printable(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    letters = sum(c.isalpha() or c.isspace() for c in text)
    return text if text and letters / len(text) > 0.8 else None


def normalize(text: str) -> Normalized:
    cleaned = _INVISIBLE.sub("", text)
    folded = unicodedata.normalize("NFKC", cleaned).translate(_CONFUSABLES)
    out = Normalized(
        folded, obfuscated=cleaned != text or folded != unicodedata.normalize("NFKC", cleaned)
    )
    for m in _HIDDEN.finditer(folded):
        hidden = next(g for g in m.groups() if g is not None) if any(m.groups()) else ""
        if hidden.strip():
            out.views.append(("hidden_markup", _TAGS.sub(" ", hidden)))
    for m in _B64.finditer(folded):
        token = m.group(0)
        try:
            decoded = _printable(base64.b64decode(token + "=" * (-len(token) % 4), validate=False))
        except (binascii.Error, ValueError):
            decoded = None
        if decoded:
            out.views.append(("base64", decoded))
    for m in _HEX.finditer(folded):
        digits = re.sub(r"[\s:]", "", m.group(0))
        try:
            decoded = _printable(bytes.fromhex(digits[: len(digits) // 2 * 2]))
        except ValueError:
            decoded = None
        if decoded:
            out.views.append(("hex", decoded))
    if _URLENC.search(folded):
        out.views.append(("url", unquote(folded)))
    low = folded.lower()
    if any(w in low for w in ("rot13", "rot-13", "rot 13", "caesar", "decode")):
        out.views.append(("rot13", codecs.decode(folded, "rot13")))
    return out
