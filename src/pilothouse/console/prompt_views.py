"""View models for the prompt pages: a bundle as text and a side-by-side diff (no I/O here)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class DiffRow:
    """One row of a side-by-side diff; a missing side is ``None`` (nothing on that side)."""

    kind: str  # equal | replace | delete | insert
    left_no: int | None
    left: str | None
    right_no: int | None
    right: str | None


def bundle_text(content: dict[str, Any]) -> str:
    """The bundle as the YAML a reviewer reads: sorted keys, so diffs show real changes."""
    return yaml.safe_dump(content, sort_keys=True, allow_unicode=True, width=100)


def side_by_side(left: str, right: str) -> list[DiffRow]:
    a, b = left.splitlines(), right.splitlines()
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows.extend(
                DiffRow("equal", i + 1, a[i], j + 1, b[j])
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            )
            continue
        for k in range(max(i2 - i1, j2 - j1)):
            i, j = i1 + k, j1 + k
            has_left, has_right = i < i2, j < j2
            kind = tag if tag != "replace" else ("replace" if has_left and has_right else "")
            kind = kind or ("delete" if has_left else "insert")
            rows.append(
                DiffRow(
                    kind,
                    i + 1 if has_left else None,
                    a[i] if has_left else None,
                    j + 1 if has_right else None,
                    b[j] if has_right else None,
                )
            )
    return rows


def changed(rows: list[DiffRow]) -> int:
    return sum(1 for r in rows if r.kind != "equal")
