"""Redaction of personal data and credentials before anything is stored or exported.

All detectors are alternatives of one precompiled regex, so a prompt is scanned
once, left to right; cheap substring gates leave out detectors that cannot
match (no ``@``, no email rule). Eager shapes carry a check run only on a
match: cards must pass Luhn (order numbers survive), IBANs mod-97, IPs must
parse, phones need a plausible digit count, long tokens must look random. A
rejected match is rescanned without its detector, so it cannot hide a secret;
after any replacement cards are checked once more, because a replaced
neighbour can leave a standalone card number behind. Detectors that start
with a repeated character class are anchored to the start of their run,
which keeps a megabyte of base64 linear.

Not detect-secrets at run time: it scans line by line under global settings,
reports values without positions (some plugins only a prefix), costs
milliseconds per line and misses current OpenAI key formats. Its plugin list
guided the prefixes below and the tests use it as an oracle. Placeholders are
typed (``[EMAIL]``, ``[CARD]``...) so a trace still shows what was there.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, Literal

import msgspec

Kind = Literal["email", "phone", "card", "iban", "ip", "secret"]
ALL_KINDS: Final[frozenset[Kind]] = frozenset(("email", "phone", "card", "iban", "ip", "secret"))

#: JSON keys whose string values are secrets whatever they look like.
DEFAULT_SECRET_KEYS: Final = (
    "authorization", "proxy-authorization", "x-api-key", "api-key", "api_key", "apikey",
    "password", "passwd", "secret", "client_secret", "access_token", "refresh_token",
    "token", "cookie", "set-cookie",
)  # fmt: skip


class ExtraPattern(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A site-specific pattern, e.g. employee ids; replaced with ``[NAME]``."""

    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]
    pattern: str


class RedactionConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Which detectors run; proposed as ``telemetry.redaction`` in the config schema."""

    kinds: frozenset[Kind] = ALL_KINDS
    high_entropy: bool = True
    extra_patterns: list[ExtraPattern] = msgspec.field(default_factory=list)
    secret_keys: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_SECRET_KEYS))


Counts = dict[str, int]

_RUN = r"[A-Za-z0-9+/_-]"
_WORDISH: Final = re.compile(r"[A-Z]?[a-z]{2,}")
#: Rules that may start right after a letter or digit; all others start a word.
_MID_WORD: Final = frozenset({"card"})
_PATTERN_CACHE: Final = 128
_MEMO_MAX_LEN: Final = 64  # memoise results for strings up to this length
_MEMO_SIZE: Final = 4096
# (rule name, kind, regex). Order matters where two rules can start at one position.
_RULES: Final[tuple[tuple[str, Kind, str], ...]] = (
    ("pem", "secret", r"-----BEGIN[A-Z ]{0,40}PRIVATE KEY-----[\s\S]*?"
        r"-----END[A-Z ]{0,40}PRIVATE KEY-----"),
    ("bearer", "secret", r"(?i:\bbearer)\s+(?P<bearer_v>[A-Za-z0-9._~+/=-]{8,})"),
    ("urlpass", "secret", r"(?<=://)[^/\s:@]{1,256}:(?P<urlpass_v>[^/\s@]{1,256})@"),
    ("jwt", "secret", r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ("prefixed", "secret", r"(?<![A-Za-z0-9])(?:"
        r"sk-(?:proj-|ant-(?:api\d\d-|admin\d\d-)?|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"
        r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}"
        r"|(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Z0-9])"
        r"|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}"
        r"|(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}|glpat-[0-9A-Za-z_-]{20,}"
        r"|hf_[A-Za-z0-9]{30,}|npm_[A-Za-z0-9]{36}|pypi-[A-Za-z0-9_-]{50,}"
        r"|SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})"),
    ("keyword", "secret", r"(?=[A-Za-z0-9_-]{3,80}[\"']?\s{0,3}[:=])"
        r"(?i:\b[A-Za-z0-9_]*?(?:password|passwd|pwd|secret|api[_-]?key"
        r"|access[_-]?key|private[_-]?key|token|credentials?)[A-Za-z0-9_]*)"
        r"[\"']?\s{0,3}[:=]\s{0,3}[\"']?(?P<keyword_v>[^\s\"',;]{6,})"),
    ("email", "email", r"(?<![\w.%+'-])[\w.%+'-]{1,64}@[^\W_](?:[\w-]{0,62})"
        r"(?:\.[\w-]{1,63})*\.[^\W\d_]{2,24}"),
    ("iban", "iban", r"(?i:\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,4})?\b)"),
    ("card", "card", r"\d(?<!\d\d)(?<!\d[ .-]\d)(?:[ .-]?\d){12,46}(?![ .-]?\d)"),
    ("phone_intl", "phone", r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}(?!\w)"),
    ("phone_nanp", "phone", r"(?<![\w(])\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?!\w)"),
    # Bare ten digits only in the NANP shape (area and exchange start 2-9): not timestamps.
    ("phone_bare", "phone", r"(?<![\w.+-])[2-9]\d\d[2-9]\d{6}(?![\w]|[.-]\d)"),
    ("phone_trunk", "phone", r"(?<![\w.])0\d{1,4}(?:[ .-]\d{2,8}){1,4}(?![\w]|\.\d)"),
    ("ipv4", "ip", r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)"),
    ("ipv6", "ip", r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}"
        r"(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4})(?![\w:]|\.\d)"),
    ("entropy", "secret", rf"(?<!{_RUN}){_RUN}{{32,}}={{0,2}}(?![A-Za-z0-9+/_=-])"),
)  # fmt: skip

_PLACEHOLDER: Final[Mapping[str, str]] = {
    "email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]",
    "iban": "[IBAN]", "ip": "[IP]", "secret": "[SECRET]",
}  # fmt: skip


_INVISIBLE: Final = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))


def normalise(text: str) -> str:
    """NFKC (non-breaking spaces, full-width digits) and no zero-width characters.

    Only non-ASCII text pays for it; what is stored is the normalised text, so
    an invisible character cannot split a card number or an address past the
    detectors.
    """
    return unicodedata.normalize("NFKC", text).translate(_INVISIBLE)


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """ISO 13616 check: move the first four characters to the end, read as base 36, mod 97."""
    iban = text.replace(" ", "").replace("-", "").upper()
    if not (15 <= len(iban) <= 34 and iban.isascii() and iban.isalnum()):
        return False
    return int("".join(str(int(c, 36)) for c in iban[4:] + iban[:4])) % 97 == 1


def _card(text: str) -> str | None:
    digits = re.sub(r"\D", "", text)
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return "[CARD]"
    groups = re.split(r"[ .-]", text)
    if len(groups) == 1:
        return None  # a bare digit run is a card or nothing: windows would hit by chance
    # "4111 1111 1111 1111 2 units", or cards side by side: every card among consecutive groups.
    out: list[str] = []
    start, found = 0, False
    while start < len(groups):
        for stop in range(len(groups), start, -1):
            window = "".join(groups[start:stop])
            if 13 <= len(window) <= 19 and luhn_valid(window):
                out.append("[CARD]")
                start, found = stop, True
                break
        else:
            out.append(groups[start])
            start += 1
    return " ".join(out) if found else None


def _iban(text: str) -> str | None:
    # The optional last group may have swallowed a following word ("DE36... X").
    parts = re.split(r"(?<=[ -])", text)
    for keep in range(len(parts), 0, -1):
        candidate = "".join(parts[:keep]).rstrip(" -")
        if iban_valid(candidate):
            return "[IBAN]" + text[len(candidate) :]
    return None


def _ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    groups = [g for g in text.split(":") if g]
    # "std::vector" or "a::b" parse as IPv6; real addresses have digits and substance.
    return (
        any(c.isdigit() for c in text) and (len(groups) >= 3 or "::" in text) and len(groups) >= 2
    )


def _ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _digit_count(low: int, high: int) -> Callable[[str], bool]:
    return lambda text: low <= sum(c.isdigit() for c in text) <= high


def looks_random(token: str) -> bool:
    """High-entropy token test tuned so identifiers, hashes and model names survive.

    Random base62/64 keys mix case and digits constantly; CamelCase names
    change class only at word boundaries and are mostly word-shaped runs;
    hex digests have no upper case. Only the first 256 characters are
    examined: a key is random throughout, and a megabyte of base64 must not
    cost a megabyte of Python loops.
    """
    core = token.rstrip("=")[:256]
    if max(len(run) for run in re.split(r"[-_/+]", core)) < 20:
        return False  # dash/underscore separated words: model names, slugs
    if not (any(c.islower() for c in core) and any(c.isupper() for c in core)):
        return False
    if not any(c.isdigit() for c in core):
        return False
    n = len(core)
    if sum(len(w) for w in _WORDISH.findall(core)) >= 0.8 * n:
        return False  # CamelCase identifiers
    entropy = -sum(k / n * math.log2(k / n) for k in Counter(core).values())
    kinds = [c.isdigit() + 2 * c.isupper() + 3 * c.islower() for c in core]
    changes = sum(a != b for a, b in itertools.pairwise(kinds)) / (n - 1)
    return entropy >= 4.0 and changes >= 0.4


def _any_in(*needles: str) -> Callable[[str, str], bool]:
    return lambda text, _lower: any(n in text for n in needles)


def _any_in_lower(*needles: str) -> Callable[[str, str], bool]:
    return lambda _text, lower: any(n in lower for n in needles)


_HAS_DIGIT: Final = re.compile(r"\d")
_PREFIXES: Final = (
    "sk-", "sk_", "rk_", "gh", "github_pat_", "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA",
    "ANVA", "AIPA", "xox", "AIza", "glpat-", "hf_", "npm_", "pypi-", "SG.",
)  # fmt: skip
_LONG_RUN: Final = re.compile(_RUN + "{32}")


def _search(pattern: re.Pattern[str]) -> Callable[[str, str], bool]:
    return lambda text, _lower: pattern.search(text) is not None


#: Cheap necessary conditions, checked at C speed before the scan: a rule whose
#: gate is false cannot match, so it is left out of that text's pattern. Plain
#: prose then pays for a handful of substring tests instead of fifteen regexes
#: at every word.
_GATES: Final[Mapping[str, Callable[[str, str], bool]]] = {
    "pem": _any_in("PRIVATE KEY"),
    "bearer": _any_in_lower("bearer"),
    "urlpass": _any_in("://"),
    "jwt": _any_in("eyJ"),
    "prefixed": _any_in(*_PREFIXES),
    "keyword": _any_in_lower("pass", "pwd", "secret", "key", "token", "credential"),
    "email": _any_in("@"),
    "iban": _search(_HAS_DIGIT),
    "card": _search(_HAS_DIGIT),
    "phone_intl": _any_in("+"),
    "phone_nanp": _search(_HAS_DIGIT),
    "phone_bare": _search(_HAS_DIGIT),
    "phone_trunk": _any_in("0"),
    "ipv4": _any_in("."),
    "ipv6": _any_in(":"),
    "entropy": _search(_LONG_RUN),
}


_CHECKS: Final[Mapping[str, Callable[[str], bool]]] = {
    "phone_intl": _digit_count(8, 15),
    "phone_nanp": _digit_count(10, 10),
    "phone_bare": _digit_count(10, 10),
    "phone_trunk": _digit_count(9, 12),
    "ipv4": _ipv4,
    "ipv6": _ipv6,
    "entropy": looks_random,
}
_VALUE_GROUP: Final = {"bearer": "bearer_v", "urlpass": "urlpass_v", "keyword": "keyword_v"}


class Redactor:
    """Built once from config; ``redact_text``/``redact_obj`` are pure and thread-safe."""

    def __init__(self, config: RedactionConfig | None = None) -> None:
        config = config or RedactionConfig()
        self._rules = [
            (name, kind, rx)
            for name, kind, rx in _RULES
            if kind in config.kinds and (name != "entropy" or config.high_entropy)
        ]
        self._kind = {name: kind for name, kind, _ in self._rules}
        self._patterns: dict[frozenset[str], re.Pattern[str]] = {}
        self._extra: list[tuple[re.Pattern[str], str, str]] = []
        for extra in config.extra_patterns:
            try:
                compiled = re.compile(extra.pattern)
            except re.error as exc:
                raise ValueError(f"redaction pattern {extra.name!r}: {exc}") from None
            self._extra.append((compiled, extra.name, f"[{extra.name.upper()}]"))
        self._secret_keys = frozenset(k.lower() for k in config.secret_keys)
        self._memo: dict[str, tuple[str, Counts]] = {}
        self._pattern(frozenset(self._kind))  # compile now: fail at start-up, not later

    def _pattern(self, included: frozenset[str]) -> re.Pattern[str] | None:
        pattern = self._patterns.get(included)
        if pattern is None:
            if not included:
                return None
            rules = [(n, rx) for n, _, rx in self._rules if n in included]
            # One shared "starts a word" lookbehind: inside a word (most positions of
            # ordinary text) the whole alternation is skipped after a single check.
            word = "|".join(f"(?P<{n}>{rx})" for n, rx in rules if n not in _MID_WORD)
            parts = [f"(?<![A-Za-z0-9])(?:{word})"] if word else []
            parts += [f"(?P<{n}>{rx})" for n, rx in rules if n in _MID_WORD]
            if len(self._patterns) >= _PATTERN_CACHE:
                self._patterns.clear()  # rule subsets are few in practice; stay bounded
            pattern = self._patterns[included] = re.compile("|".join(parts))
        return pattern

    def redact_text(self, text: str) -> tuple[str, Counts]:
        """``text`` with every detected value replaced, and how many of each kind.

        Short strings repeat across requests (roles, model names, finish reasons),
        so their results are memoised; the answer is a pure function of the text.
        """
        if len(text) > _MEMO_MAX_LEN:
            return self._redact_text(text)
        hit = self._memo.get(text)
        if hit is None:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            hit = self._memo[text] = self._redact_text(text)
        return hit[0], dict(hit[1])

    def _redact_text(self, text: str) -> tuple[str, Counts]:
        counts: Counts = {}
        if not text.isascii():
            text = normalise(text)
        for extra, name, placeholder in self._extra:
            text, n = extra.subn(placeholder, text)
            if n:
                counts[name] = counts.get(name, 0) + n
        lower = text.lower()
        active = frozenset(n for n, _, _ in self._rules if _GATES[n](text, lower))
        out: list[str] = []
        self._scan(text, 0, len(text), active, out, counts)
        result = "".join(out)
        if "card" in active and result != text:
            # A replacement can split a long digit run ("555-123-4567 4111 1111 1111
            # 1111") and leave a standalone card number behind: check cards once more.
            tail: list[str] = []
            self._scan(result, 0, len(result), frozenset({"card"}), tail, counts)
            result = "".join(tail)
        return result, counts

    def _scan(
        self,
        text: str,
        start: int,
        end: int,
        included: frozenset[str],
        out: list[str],
        counts: Counts,
    ) -> None:
        pattern = self._pattern(included)
        last = start
        if pattern is not None:
            for match in pattern.finditer(text, start, end):
                rule = match.lastgroup
                assert rule is not None
                replacement = self._replacement(rule, match)
                out.append(text[last : match.start()])
                last = match.end()
                if replacement is None:
                    # Rejected candidate: look inside it with every other rule.
                    self._scan(text, match.start(), match.end(), included - {rule}, out, counts)
                    continue
                kind = self._kind[rule]
                counts[kind] = counts.get(kind, 0) + 1
                out.append(replacement)
        out.append(text[last:end])

    def _replacement(self, rule: str, match: re.Match[str]) -> str | None:
        found = match.group(rule)
        if rule == "card":
            return _card(found)
        if rule == "iban":
            return _iban(found)
        check = _CHECKS.get(rule)
        if check is not None and not check(found):
            return None
        value_group = _VALUE_GROUP.get(rule)
        if value_group is not None:
            offset = match.start()
            head = found[: match.start(value_group) - offset]
            return head + "[SECRET]" + found[match.end(value_group) - offset :]
        return _PLACEHOLDER[self._kind[rule]]

    def redact_obj(self, obj: Any) -> tuple[Any, Counts]:
        """A redacted copy of a JSON-like value (messages, tool calls, metadata).

        Strings are redacted wherever they appear, including JSON encoded
        inside strings (tool-call ``arguments``); string values under keys such
        as ``authorization`` or ``password`` are replaced whole. The input is
        never modified.
        """
        counts: Counts = {}
        return self._walk(obj, counts), counts

    def _walk(self, obj: Any, counts: Counts) -> Any:
        if isinstance(obj, str):
            text, found = self.redact_text(obj)
            for kind, n in found.items():
                counts[kind] = counts.get(kind, 0) + n
            return text
        if isinstance(obj, Mapping):
            result = {}
            for key, value in obj.items():
                secret = isinstance(key, str) and key.lower() in self._secret_keys
                if secret and value and isinstance(value, str | int | float):
                    counts["secret"] = counts.get("secret", 0) + 1
                    result[key] = "[SECRET]"
                    continue
                result[key] = self._walk(value, counts)
            return result
        if isinstance(obj, list):
            return [self._walk(item, counts) for item in obj]
        if isinstance(obj, tuple):
            return tuple(self._walk(item, counts) for item in obj)
        return obj
