"""Prompt versions and label-history entries as the registry hands them out, from their rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def iso(value: datetime | None) -> str | None:
    v = utc(value)
    return v.isoformat() if v is not None else None


@dataclass(frozen=True, slots=True)
class Version:
    """One immutable prompt version (the bundle plus who/when/why)."""

    name: str
    version: int
    hash: str
    content: dict[str, Any]
    author: str
    reason: str | None
    parent: int | None
    created_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            **self.content,
            "version": self.version,
            "hash": self.hash,
            "author": self.author,
            "reason": self.reason,
            "parent": self.parent,
            "created_at": iso(self.created_at),
        }


def version_from_row(row: Any) -> Version:
    return Version(
        row.name,
        row.version,
        row.hash,
        row.content,
        row.author,
        row.reason,
        row.parent,
        utc(row.created_at) or datetime.now(UTC),
    )


def history_entry(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "label": row.label,
        "action": row.action,
        "from": row.from_version,
        "to": row.to_version,
        "who": row.actor,
        "when": iso(row.at),
        "why": row.reason,
        "forced": bool(row.forced),
        "evidence": row.evidence or [],
    }
