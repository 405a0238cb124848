"""Files, batches and batch lines in the store; every state change is one conditional UPDATE.

Ownership is a filter, not a check after the fact: ``owner`` is the key id whose
rows a caller may see, or ``None`` for an admin, who sees all. A row another key
owns is a 404, exactly as one that does not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from ulid import ULID

from pilothouse.batches.jsonl import Line, LineError, dumps_lines
from pilothouse.batches.objects import ACTIVE, TERMINAL
from pilothouse.batches.tables import batch_lines, batches, files
from pilothouse.errors import InvalidRequestError, NotFoundError, PilothouseError
from pilothouse.store.tables import usage_records

INSERT_CHUNK = 500
WINDOW = timedelta(hours=24)


class BatchConflictError(PilothouseError):
    """409: the batch's state does not allow this (e.g. cancelling a finished batch)."""

    status = 409
    type = "invalid_request_error"
    code = "batch_not_cancellable"


class _AlreadyFinished(Exception):
    """Another runner finished this line first: roll back, write nothing."""


def new_id(prefix: str) -> str:
    return prefix + str(ULID()).lower()


def _now() -> datetime:
    return datetime.now(UTC)


def _owned(table: Any, owner: str | None) -> Any:
    return table.c.key_id == owner if owner is not None else True


class BatchStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # -- files ---------------------------------------------------------------------------

    async def create_file(
        self, key_id: str | None, purpose: str, filename: str, content: bytes
    ) -> Any:
        file_id = new_id("file-")
        row: dict[str, Any] = {
            "id": file_id,
            "key_id": key_id,
            "purpose": purpose,
            "filename": filename,
            "bytes": len(content),
            "content": content,
            "batch_id": None,
            "created_at": _now(),
        }
        async with self.engine.begin() as conn:
            await conn.execute(insert(files).values(row))
        return await self.get_file(file_id, key_id)

    async def get_file(self, file_id: str, owner: str | None) -> Any:
        cols = [c for c in files.c if c.name != "content"]
        query = select(*cols).where(files.c.id == file_id, _owned(files, owner))
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise NotFoundError(f"no file with id {file_id!r}", param="file_id")
        return row

    async def file_content(self, file_id: str, owner: str | None) -> bytes:
        query = select(files.c.content).where(files.c.id == file_id, _owned(files, owner))
        async with self.engine.connect() as conn:
            content = (await conn.execute(query)).scalar_one_or_none()
        if content is None:
            raise NotFoundError(f"no file with id {file_id!r}", param="file_id")
        return bytes(content)

    async def list_files(
        self, owner: str | None, *, purpose: str | None, after: str | None, limit: int, asc: bool
    ) -> tuple[list[Any], bool]:
        cols = [c for c in files.c if c.name != "content"]
        query = select(*cols).where(_owned(files, owner))
        if purpose is not None:
            query = query.where(files.c.purpose == purpose)
        if after is not None:
            query = query.where(files.c.id > after if asc else files.c.id < after)
        query = query.order_by(files.c.id.asc() if asc else files.c.id.desc()).limit(limit + 1)
        async with self.engine.connect() as conn:
            rows = list((await conn.execute(query)).fetchall())
        return rows[:limit], len(rows) > limit

    async def delete_file(self, file_id: str, owner: str | None) -> None:
        async with self.engine.begin() as conn:
            done = await conn.execute(
                delete(files).where(files.c.id == file_id, _owned(files, owner))
            )
        if done.rowcount != 1:
            raise NotFoundError(f"no file with id {file_id!r}", param="file_id")

    # -- batches -------------------------------------------------------------------------

    async def create_batch(
        self,
        *,
        key_id: str,
        endpoint: str,
        input_file_id: str,
        metadata: dict[str, Any] | None,
        lines: list[Line],
        errors: list[LineError],
    ) -> Any:
        """Store the batch and its lines in one transaction; invalid input: a failed batch."""
        now = _now()
        row: dict[str, Any] = {
            "id": new_id("batch_"),
            "key_id": key_id,
            "endpoint": endpoint,
            "input_file_id": input_file_id,
            "completion_window": "24h",
            "status": "failed" if errors else "validating",
            "metadata": metadata,
            "errors": {"object": "list", "data": [e.public() for e in errors]} if errors else None,
            "total": 0 if errors else len(lines),
            "completed": 0,
            "failed": 0,
            "created_at": now,
            "expires_at": now + WINDOW,
            "failed_at": now if errors else None,
        }
        async with self.engine.begin() as conn:
            await conn.execute(insert(batches).values(row))
            if not errors:
                values = [
                    {
                        "batch_id": row["id"],
                        "line": line.number,
                        "custom_id": line.custom_id,
                        "body": line.body,
                        "state": "pending",
                        "attempts": 0,
                    }
                    for line in lines
                ]
                for start in range(0, len(values), INSERT_CHUNK):
                    await conn.execute(insert(batch_lines), values[start : start + INSERT_CHUNK])
        return await self.get_batch(row["id"], key_id)

    async def get_batch(self, batch_id: str, owner: str | None) -> Any:
        query = select(batches).where(batches.c.id == batch_id, _owned(batches, owner))
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise NotFoundError(f"no batch with id {batch_id!r}", param="batch_id")
        return row

    async def list_batches(
        self, owner: str | None, *, after: str | None, limit: int
    ) -> tuple[list[Any], bool]:
        query = select(batches).where(_owned(batches, owner))
        if after is not None:
            query = query.where(batches.c.id < after)
        query = query.order_by(batches.c.id.desc()).limit(limit + 1)
        async with self.engine.connect() as conn:
            rows = list((await conn.execute(query)).fetchall())
        return rows[:limit], len(rows) > limit

    async def line_counts(self, batch_ids: list[str]) -> dict[str, dict[str, int]]:
        """Live per-state line counts of running batches (one grouped query)."""
        if not batch_ids:
            return {}
        query = (
            select(batch_lines.c.batch_id, batch_lines.c.state, func.count())
            .where(batch_lines.c.batch_id.in_(batch_ids))
            .group_by(batch_lines.c.batch_id, batch_lines.c.state)
        )
        out: dict[str, dict[str, int]] = {b: {} for b in batch_ids}
        async with self.engine.connect() as conn:
            for batch_id, state, count in await conn.execute(query):
                out[batch_id][state] = int(count)
        return out

    async def cancel(self, batch_id: str, owner: str | None) -> Any:
        row = await self.get_batch(batch_id, owner)
        if row.status in ("cancelling", "cancelled"):
            return row
        async with self.engine.begin() as conn:
            done = await conn.execute(
                update(batches)
                .where(
                    batches.c.id == batch_id, batches.c.status.in_(("validating", "in_progress"))
                )
                .values(status="cancelling", cancelling_at=_now())
            )
        if done.rowcount != 1:
            current = await self.get_batch(batch_id, owner)
            if current.status in ("cancelling", "cancelled"):
                return current
            raise BatchConflictError(
                f"batch {batch_id} is {current.status}; only a validating or in-progress "
                "batch can be cancelled"
            )
        return await self.get_batch(batch_id, owner)

    # -- the runner's side: leases, lines, finalisation -----------------------------------

    async def claim(self, owner: str, lease_s: float) -> Any | None:
        """Take one active batch whose lease is free or lapsed (oldest first), or ``None``."""
        now = _now()
        # Never one this runner holds: each process has its own owner id, so after a
        # restart its old leases simply lapse.
        free = or_(batches.c.lease_owner.is_(None), batches.c.lease_until < now)
        query = (
            select(batches.c.id)
            .where(batches.c.status.in_(ACTIVE), free)
            .order_by(batches.c.id)
            .limit(5)
        )
        async with self.engine.connect() as conn:
            candidates = list((await conn.execute(query)).scalars())
        for batch_id in candidates:
            async with self.engine.begin() as conn:
                done = await conn.execute(
                    update(batches)
                    .where(batches.c.id == batch_id, batches.c.status.in_(ACTIVE), free)
                    .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s))
                )
            if done.rowcount == 1:
                return await self.get_batch(batch_id, None)
        return None

    async def renew(self, batch_id: str, owner: str, lease_s: float) -> bool:
        async with self.engine.begin() as conn:
            done = await conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.lease_owner == owner)
                .values(lease_until=_now() + timedelta(seconds=lease_s))
            )
        return bool(done.rowcount == 1)

    async def release(self, batch_id: str, owner: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    async def start(self, batch_id: str, owner: str) -> None:
        """validating → in_progress (the lines were checked at create time)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(batches)
                .where(
                    batches.c.id == batch_id,
                    batches.c.lease_owner == owner,
                    batches.c.status == "validating",
                )
                .values(status="in_progress", in_progress_at=_now())
            )

    async def status(self, batch_id: str) -> tuple[str, datetime]:
        """The batch's status and when its completion window ends, as stored now."""
        async with self.engine.connect() as conn:
            query = select(batches.c.status, batches.c.expires_at).where(batches.c.id == batch_id)
            row = (await conn.execute(query)).one()
        expires = row.expires_at
        return str(row.status), expires if expires.tzinfo else expires.replace(tzinfo=UTC)

    async def pending_lines(self, batch_id: str, skip: set[int], limit: int) -> list[Any]:
        query = select(batch_lines.c.line, batch_lines.c.custom_id, batch_lines.c.body).where(
            batch_lines.c.batch_id == batch_id, batch_lines.c.state == "pending"
        )
        if skip:
            query = query.where(batch_lines.c.line.not_in(skip))
        query = query.order_by(batch_lines.c.line).limit(limit)
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).fetchall())

    async def finish_line(
        self,
        batch_id: str,
        line: int,
        *,
        ok: bool,
        status_code: int,
        result: dict[str, Any],
        request_id: str,
        attempts: int,
        usage: dict[str, Any],
    ) -> bool:
        """Record a line's result and its usage row together; ``False``: already finished."""
        try:
            async with self.engine.begin() as conn:
                done = await conn.execute(
                    update(batch_lines)
                    .where(
                        batch_lines.c.batch_id == batch_id,
                        batch_lines.c.line == line,
                        batch_lines.c.state == "pending",
                    )
                    .values(
                        state="done" if ok else "failed",
                        status_code=status_code,
                        result=result,
                        request_id=request_id,
                        attempts=attempts,
                        finished_at=_now(),
                    )
                )
                if done.rowcount != 1:
                    raise _AlreadyFinished
                await conn.execute(insert(usage_records).values(usage))
        except _AlreadyFinished:
            return False
        return True

    async def finalize(self, batch_id: str, owner: str, status: str) -> bool:
        """Close the batch as ``status``: lines still pending become cancelled/expired, and
        the output and error files, counts and status are written in one transaction."""
        closed = {"cancelled": "cancelled", "expired": "expired"}.get(status)
        now = _now()
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    select(batches).where(batches.c.id == batch_id, batches.c.lease_owner == owner)
                )
            ).first()
            if row is None or row.status in TERMINAL:
                return False
            if closed is not None:
                await conn.execute(
                    update(batch_lines)
                    .where(batch_lines.c.batch_id == batch_id, batch_lines.c.state == "pending")
                    .values(state=closed, finished_at=now)
                )
            lines = (
                await conn.execute(
                    select(
                        batch_lines.c.line,
                        batch_lines.c.custom_id,
                        batch_lines.c.state,
                        batch_lines.c.result,
                    )
                    .where(batch_lines.c.batch_id == batch_id)
                    .order_by(batch_lines.c.line)
                )
            ).fetchall()
            output, errors = _split(lines, status)
            values: dict[str, Any] = {
                "status": status,
                f"{status}_at": now,
                "completed": sum(1 for ln in lines if ln.state == "done"),
                "failed": sum(1 for ln in lines if ln.state == "failed"),
                "lease_owner": None,
                "lease_until": None,
            }
            for kind, rows in (("output", output), ("error", errors)):
                if not rows:
                    continue
                content = dumps_lines(rows)
                file_id = new_id("file-")
                await conn.execute(
                    insert(files).values(
                        id=file_id,
                        key_id=row.key_id,
                        purpose="batch_output",
                        filename=f"{batch_id}_{kind}.jsonl",
                        bytes=len(content),
                        content=content,
                        batch_id=batch_id,
                        created_at=now,
                    )
                )
                values[f"{kind}_file_id"] = file_id
            await conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.lease_owner == owner)
                .values(**values)
            )
        return True

    async def mark_finalizing(self, batch_id: str, owner: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(batches)
                .where(
                    and_(
                        batches.c.id == batch_id,
                        batches.c.lease_owner == owner,
                        batches.c.status == "in_progress",
                    )
                )
                .values(status="finalizing", finalizing_at=_now())
            )


def _split(lines: Sequence[Any], status: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Output file rows (answered 2xx) and error file rows (error answers, lines not run)."""
    output: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for ln in lines:
        if ln.state == "done":
            output.append(ln.result)
        elif ln.state == "failed":
            errors.append(ln.result)
        elif ln.state in ("cancelled", "expired"):
            errors.append(
                {
                    "id": new_id("batch_req_"),
                    "custom_id": ln.custom_id,
                    "response": None,
                    "error": {
                        "code": f"batch_{ln.state}",
                        "message": f"the batch was {ln.state} before this request ran",
                    },
                }
            )
    return output, errors


def check_purpose(purpose: Any) -> str:
    if purpose != "batch":
        raise InvalidRequestError(
            f"`purpose` must be 'batch' (the only purpose this gateway stores), got {purpose!r}",
            param="purpose",
        )
    return "batch"
