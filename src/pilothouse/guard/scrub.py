"""Scrub the operator's secrets out of upstream error text before anyone sees it.

Upstreams echo what they were sent: a 401 quoting the key (``Incorrect API key
provided: sk-…``), a 400 quoting the request headers, a proxy's HTML 502 page.
That text becomes the client's error message, a span's ``status_message`` and
``/admin/traces`` output, so it is cleaned once, where upstream errors enter
the gateway (the router), by one :class:`SecretScrubber` built per runtime
from the settings:

* every configured secret value (each :class:`Secret` in the config — provider
  keys, ``server.admin_key``, OTLP headers — secret-looking provider header
  values, and the passwords in the store and Redis URLs) is replaced by
  ``[SECRET]``, as is any token starting with a long secret's first 12
  characters (a key quoted with its tail elided);
* an HTML page becomes a one-line summary (its ``<title>``, if any);
* the telemetry redactor (:mod:`pilothouse.guard.redact`) then runs over what
  is left, catching credentials the config does not know about.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec

from pilothouse.config.schema import Secret, Settings
from pilothouse.errors import ProviderError
from pilothouse.guard.redact import Redactor

PLACEHOLDER = "[SECRET]"
MIN_SECRET_LEN = 6
PREFIX_LEN = 12
MAX_MESSAGE = 500
_SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie|password|signature", re.I)
_HTML = re.compile(r"<\s*(?:!doctype\b|html\b|head\b|body\b)", re.I)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.I | re.S)
_TAGS = re.compile(r"<[^>]*>")


def _walk(value: Any) -> Iterator[Any]:
    """Every leaf of a config tree (structs, dicts, lists), Secrets included."""
    if isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            yield from _walk(getattr(value, name))
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and isinstance(key, str) and _SECRET_HEADER.search(key):
                yield Secret(item)  # a header value such as `x-api-key: …`
            else:
                yield from _walk(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _walk(item)
    else:
        yield value


def configured_secrets(settings: Settings) -> set[str]:
    """The secret values a config holds, resolved (``env:NAME`` already read)."""
    found: set[str] = set()
    for leaf in _walk([settings, settings.provider_configs]):
        if isinstance(leaf, Secret):
            value = leaf.get()
            found.add(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.lower() in ("bearer", "basic", "token"):
                found.add(token)
    for url in (settings.store.url, settings.redis.url):
        if url:
            password = urlsplit(url).password
            if password:
                found.update((password, unquote(password)))
    return {s for s in found if len(s.strip()) >= MIN_SECRET_LEN}


def summarise_html(text: str) -> str:
    """Replace an HTML page inside ``text`` with a short summary."""
    match = _HTML.search(text)
    if match is None:
        return text
    page = text[match.start() :]
    title = _TITLE.search(page)
    label = ""
    if title is not None:
        label = " ".join(html.unescape(_TAGS.sub(" ", title.group(1))).split())[:100]
    summary = "an HTML error page" + (f" ({label})" if label else "")
    return text[: match.start()] + summary


class SecretScrubber:
    """Removes known secret values and redacts what looks like credentials."""

    def __init__(self, secrets: Iterable[str], redactor: Redactor | None = None) -> None:
        values = sorted({s for s in secrets if len(s.strip()) >= MIN_SECRET_LEN}, key=len)
        values.reverse()  # longest first, so a secret containing another goes whole
        parts = [re.escape(s) for s in values]
        parts += [re.escape(s[:PREFIX_LEN]) + r"\S*" for s in values if len(s) >= 2 * PREFIX_LEN]
        self._pattern = re.compile("|".join(parts)) if parts else None
        self.redactor = redactor

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretScrubber:
        return cls(configured_secrets(settings), Redactor(settings.telemetry.redaction))

    def text(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(PLACEHOLDER, text)
        text = summarise_html(text)
        if self.redactor is not None:
            text, _counts = self.redactor.redact_text(text)
        if len(text) > MAX_MESSAGE:
            text = text[:MAX_MESSAGE] + "…"
        return text

    def obj(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.obj(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.obj(v) for v in value]
        return value

    def error(self, exc: ProviderError) -> ProviderError:
        """Clean a provider error in place (message and parsed body); returns it."""
        exc.message = self.text(exc.message)
        exc.args = (exc.message,)
        if exc.body is not None:
            exc.body = self.obj(exc.body)
        return exc
