"""The audit hash chain: each kind of tampering is named at the right seq."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pilothouse.audit.log import GENESIS, check_chain, row_hash
from pilothouse.gateway.authz import Principal, allows


def chain(n: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    prev = GENESIS
    start = datetime(2026, 12, 1, tzinfo=UTC)
    for seq in range(1, n + 1):
        row = {
            "seq": seq,
            "at": start + timedelta(seconds=seq),
            "actor": "alice",
            "action": "label.move",
            "target": f"p/{seq}",
            "details": {"to": seq},
            "prev_hash": prev,
        }
        row["hash"] = row_hash(prev, row)
        prev = row["hash"]
        rows.append(row)
    return rows


def test_intact_chain_verifies_with_its_head() -> None:
    rows = chain(5)
    verdict = check_chain(rows, expect_head=rows[2]["hash"])
    assert verdict.ok and verdict.count == 5 and verdict.head == rows[-1]["hash"]


def test_edit_remove_reorder_insert_and_truncation_are_named() -> None:
    rows = chain(6)
    edited = [dict(r) for r in rows]
    edited[2]["details"] = {"to": 99}
    assert (check_chain(edited).bad_seq, check_chain(edited).problem) == (3, "edited")

    removed = rows[:3] + rows[4:]
    assert (check_chain(removed).bad_seq, check_chain(removed).problem) == (4, "removed")

    swapped = [dict(r) for r in rows]
    swapped[2], swapped[3] = {**rows[3], "seq": 3}, {**rows[2], "seq": 4}
    assert (check_chain(swapped).bad_seq, check_chain(swapped).problem) == (3, "reordered")

    forged = {**rows[2], "seq": 3, "actor": "mallory", "prev_hash": rows[1]["hash"]}
    forged["hash"] = row_hash(rows[1]["hash"], forged)
    inserted = rows[:2] + [forged] + [{**r, "seq": r["seq"] + 1} for r in rows[2:]]
    assert (check_chain(inserted).bad_seq, check_chain(inserted).problem) == (3, "inserted")

    truncated = check_chain(rows[:4], expect_head=rows[-1]["hash"])
    assert (truncated.ok, truncated.bad_seq, truncated.problem) == (False, 5, "removed")


def test_role_matrix_matches_the_issue() -> None:
    assert allows("admin", "anything.at.all")
    assert allows("operator", "keys.write") and allows("operator", "config.reload")
    assert not allows("operator", "usage.read")
    assert allows("viewer", "traces.read") and not allows("viewer", "keys.write")
    assert allows("finance", "costs.read") and not allows("finance", "traces.read")
    assert Principal("v", "viewer").redacted and not Principal("a", "admin").redacted
