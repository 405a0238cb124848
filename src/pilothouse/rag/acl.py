"""Whose chunks a caller may read: one rule for the search route and bundle retrieval."""

from __future__ import annotations

from typing import Any


def caller_groups(key: Any) -> list[str] | None:
    """``None`` (reads everything) for admins, else the key's ``metadata.groups``."""
    groups = (key.metadata or {}).get("groups") or []
    if isinstance(groups, str):
        groups = [groups]
    groups = [str(g) for g in groups if isinstance(g, str | int)]
    if key.role == "admin" or "admin" in key.scopes or "admin" in groups:
        return None
    return groups
