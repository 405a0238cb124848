"""The audit log: every change is one hash-chained row of ``audit_log``.

Use it from anywhere that changes state::

    from pilothouse import audit
    await audit.append(engine_or_conn, actor="alice", action="key.revoke",
                       target="key_01h…", details={"name": "search"})

Pass an ``AsyncConnection`` inside your own ``engine.begin()`` block to commit
the change and its audit row together (both or neither); pass the
``AsyncEngine`` to write the row in its own transaction. ``details`` must hold
ids, hashes and small facts only, never a secret or prompt content.

Each row's ``hash`` is SHA-256 over the previous row's hash and the row's
canonical content (seq, at, actor, action, target, details), so editing,
removing, inserting or reordering a row breaks the chain from that seq on,
and :func:`verify` says which. On PostgreSQL appends take a transaction-scoped
advisory lock, so every replica appends in one order with gap-free ``seq``;
on SQLite the write lock plus a retry on a taken ``seq`` gives the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pilothouse.releases.tables import audit_log

GENESIS = "0" * 64
LOCK_ID = 0x70696C6F  # "pilo": the advisory lock every replica's audit append takes
_RETRIES = 20


def canonical(row: dict[str, Any]) -> bytes:
    """The bytes a row's hash covers (sorted keys, UTC microsecond timestamps)."""
    at = row["at"]
    if isinstance(at, datetime):
        at = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    body = {
        "seq": row["seq"],
        "at": at,
        "actor": row["actor"],
        "action": row["action"],
        "target": row["target"],
        "details": row["details"],
    }
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def row_hash(prev_hash: str, row: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(row)).hexdigest()


async def _append_in(conn: AsyncConnection, values: dict[str, Any]) -> dict[str, Any]:
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_ID})
    last = (
        await conn.execute(
            select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
        )
    ).first()
    seq, prev = (last.seq + 1, last.hash) if last is not None else (1, GENESIS)
    row = {**values, "seq": seq, "prev_hash": prev}
    row["hash"] = row_hash(prev, row)
    await conn.execute(audit_log.insert().values(**row))
    return row


async def append(
    db: AsyncEngine | AsyncConnection,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one audit row and return it (with ``seq`` and ``hash``).

    ``actor`` is the acting principal (``bootstrap``, a key's name,
    ``cli:<user>``, ``signal``); ``action`` a dotted verb such as
    ``label.move``; ``target`` what it acted on (``support-answer/prod``).
    """
    values = {
        "at": datetime.now(UTC),
        "actor": actor,
        "action": action,
        "target": target,
        # Round-trip so the hash covers exactly what the JSON column gives back.
        "details": orjson.loads(orjson.dumps(details or {})),
    }
    if isinstance(db, AsyncConnection):
        return await _append_in(db, values)
    for attempt in range(_RETRIES):
        try:
            async with db.begin() as conn:
                return await _append_in(conn, values)
        except (IntegrityError, OperationalError):  # SQLite: another writer took the seq
            if attempt == _RETRIES - 1 or db.dialect.name == "postgresql":
                raise
    raise AssertionError("unreachable")


def _as_dict(row: Any) -> dict[str, Any]:
    at = row.at
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return {
        "seq": row.seq,
        "at": at,
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "details": row.details,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


async def read_rows(
    engine: AsyncEngine,
    *,
    since: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    after_seq: int = 0,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Rows in ``seq`` order, filtered; ``after_seq`` is the cursor."""
    query = select(audit_log).where(audit_log.c.seq > after_seq).order_by(audit_log.c.seq)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    if actor:
        query = query.where(audit_log.c.actor == actor)
    if action:
        query = query.where(audit_log.c.action == action)
    if limit is not None:
        query = query.limit(limit)
    async with engine.connect() as conn:
        return [_as_dict(r) for r in (await conn.execute(query)).fetchall()]


def public(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the API and export show it (ISO timestamps)."""
    return {**row, "at": row["at"].isoformat() if row["at"] is not None else None}


async def head(engine: AsyncEngine) -> tuple[int, str]:
    """(last seq, head hash); ``(0, GENESIS)`` for an empty log."""
    async with engine.connect() as conn:
        last = (
            await conn.execute(
                select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
            )
        ).first()
    return (last.seq, last.hash) if last is not None else (0, GENESIS)


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    count: int
    head: str
    bad_seq: int | None = None
    problem: str | None = None  # edited | removed | inserted | reordered

    def message(self) -> str:
        if self.ok:
            return f"ok: {self.count} rows, head {self.head}"
        return f"audit log broken at seq {self.bad_seq}: a row was {self.problem}"


def check_chain(rows: Sequence[dict[str, Any]], expect_head: str | None = None) -> Verdict:
    """Walk the chain; name the first bad seq and what happened to it."""
    hashes = {r["hash"] for r in rows}
    prev_hash, expected_seq = GENESIS, 1
    for i, row in enumerate(rows):
        problem = _classify(rows, i, prev_hash, expected_seq, hashes)
        if problem is not None:
            bad = expected_seq if problem == "removed" else row["seq"]
            if problem == "inserted" and i > 0:
                bad = rows[i - 1]["seq"]
            return Verdict(False, len(rows), prev_hash, bad, problem)
        prev_hash, expected_seq = row["hash"], row["seq"] + 1
    if expect_head is not None and expect_head != GENESIS and expect_head not in hashes:
        return Verdict(False, len(rows), prev_hash, expected_seq, "removed")
    return Verdict(True, len(rows), prev_hash)


def _classify(
    rows: Sequence[dict[str, Any]], i: int, prev_hash: str, expected_seq: int, hashes: set[str]
) -> str | None:
    row = rows[i]
    if row["seq"] > expected_seq:
        return "removed"
    if row["seq"] < expected_seq:
        return "inserted"
    if row["prev_hash"] == prev_hash:
        return None if row_hash(row["prev_hash"], row) == row["hash"] else "edited"
    if i >= 2 and row["prev_hash"] == rows[i - 2]["hash"]:
        return "inserted"  # the row before this one was slipped into the chain
    if i == 1 and row["prev_hash"] == GENESIS:
        return "inserted"
    if row["prev_hash"] in hashes:
        return "reordered"
    return "edited"


async def verify(engine: AsyncEngine, expect_head: str | None = None) -> Verdict:
    """Check the whole stored chain (and that ``expect_head`` is still in it)."""
    return check_chain(await read_rows(engine), expect_head)
