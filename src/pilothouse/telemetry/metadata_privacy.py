"""Request metadata under the same capture policy as message content.

Metadata is attribution (``user``, ``team``, ``feature``): reports group by it,
so redacting ``alice@example.com`` to ``[EMAIL]`` would fold every user into
one. Under ``telemetry.capture_content: none`` or ``redacted`` a metadata value
in which the redactor finds personal data or a secret is stored instead as a
keyed pseudonym, ``<email:9f86d081884c>`` (HMAC-SHA-256 with a per-deployment
secret): the same value always gives the same pseudonym, so grouping and
per-user reports still work, and nobody reading the store, the console, an
export or an OTLP backend learns the address. ``full`` stores values as sent.
The secret is ``privacy.pseudonym_secret`` when set, else one kept in the store
and shared by every replica (so pseudonyms survive restarts).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.guard.redact import Redactor
from pilothouse.store.shared_secrets import shared_secret

if TYPE_CHECKING:
    from pilothouse.config.schema import Settings
    from pilothouse.gateway.context import RequestContext

_MEMO_SIZE = 4096  # metadata values repeat (a user sends many requests)
_DIGEST_CHARS = 12


class MetadataPrivacy:
    def __init__(self, mode: str, redactor: Redactor, secret: bytes | None = None) -> None:
        self.mode = mode
        self.redactor = redactor
        self.secret = secret
        self._memo: dict[str, str] = {}

    @classmethod
    def from_settings(cls, settings: Settings, redactor: Redactor) -> MetadataPrivacy:
        configured = settings.privacy.pseudonym_secret
        secret = configured.get().encode() if configured is not None else None
        return cls(settings.telemetry.capture_content, redactor, secret)

    def with_settings(self, settings: Settings, redactor: Redactor) -> MetadataPrivacy:
        """After a reload: the new mode and rules; the secret stays unless one is configured."""
        fresh = MetadataPrivacy.from_settings(settings, redactor)
        if fresh.secret is None:
            fresh.secret = self.secret
        return fresh

    async def load_secret(self, engine: AsyncEngine) -> None:
        if self.secret is None:
            self.secret = await shared_secret(engine, "metadata")

    @property
    def active(self) -> bool:
        return self.mode != "full"

    def apply(self, meta: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """``meta`` as it may be stored: values holding personal data pseudonymised."""
        if meta is None or not self.active:
            return dict(meta) if meta is not None else None
        return {k: self._walk(k, v) for k, v in meta.items()}

    def stored_value(self, name: str, value: str | None) -> str | None:
        """What a filter on metadata ``name`` must compare with (``alice@x`` → its pseudonym)."""
        if not value or not self.active:
            return value
        return str(self._walk(name, value))

    @classmethod
    async def for_store(cls, settings: Settings, engine: AsyncEngine) -> MetadataPrivacy:
        """One for a process without a gateway (the CLI), reading the shared secret."""
        privacy = cls.from_settings(settings, Redactor(settings.telemetry.redaction))
        await privacy.load_secret(engine)
        return privacy

    def protect(self, ctx: RequestContext) -> None:
        """Replace the request's metadata by its stored form, once, before anything stores it."""
        if ctx.metadata_protected:
            return
        ctx.metadata_protected = True
        if not self.active:
            return
        ctx.metadata = self.apply(ctx.metadata)
        if ctx.key is not None and ctx.key.metadata:
            ctx.stored_key_metadata = self.apply(ctx.key.metadata)

    def _walk(self, key: str, value: Any) -> Any:
        if isinstance(value, str):
            return self._value(key, value)
        if isinstance(value, Mapping):
            return {k: self._walk(str(k), v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(key, v) for v in value]
        return value

    def _value(self, key: str, value: str) -> str:
        memo_key = f"{key}\0{value}"
        hit = self._memo.get(memo_key)
        if hit is not None:
            return hit
        _redacted, counts = self.redactor.redact_obj({key: value})
        out = value
        if counts:
            kind = max(counts, key=lambda k: counts[k])
            out = f"<{kind}:{self.pseudonym(value)}>"
        if len(self._memo) >= _MEMO_SIZE:
            self._memo.clear()
        self._memo[memo_key] = out
        return out

    def pseudonym(self, value: str) -> str:
        """The stored stand-in digest of ``value`` (also how to look a subject up)."""
        if self.secret is None:
            raise RuntimeError("metadata privacy used before its secret was loaded")
        digest = hmac.new(self.secret, value.encode(), hashlib.sha256).hexdigest()
        return digest[:_DIGEST_CHARS]
