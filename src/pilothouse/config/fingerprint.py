"""A short hash of the effective configuration, to see replicas that disagree.

Computed from the validated settings (so key order and formatting in the file do
not matter, and `env:` values do), with every secret replaced by a fixed marker:
the hash is published in /readyz and /metrics and must not help guess a secret.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from pilothouse.config.schema import Secret, Settings


def _encode(obj: Any) -> Any:
    if isinstance(obj, Secret):
        return "<secret>"
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    return str(obj)


def config_hash(settings: Settings) -> str:
    """16 hex digits of SHA-256 over the settings (``source`` path excluded)."""
    plain = msgspec.structs.replace(settings, source="")
    encoded = msgspec.json.encode(plain, enc_hook=_encode, order="sorted")
    return hashlib.sha256(encoded).hexdigest()[:16]
