"""The ``Secret`` config type, in a module of its own so any config section can use it.

``config/schema.py`` imports every section's config module, so a section that
needs a secret (``rag.principal.secret``) cannot import it from there.
"""

from __future__ import annotations


class Secret:
    """A credential read from config; never printed, logged or serialised."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)
