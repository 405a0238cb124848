"""Erasure in the Batch API stores: line bodies and results, and the JSONL files.

Batch content is stored raw (it is the client's own file and its results), so
string matching on redacted trace content would miss it: the subject's lines
are found by request id, by the batch's owner key, or by batch metadata naming
the user. Each matched line keeps its row, custom id, state, status code and
request id (so counts, usage and cost still reconcile) but its body and answer
become ``{"erased": true}``; the same line in the input, output and error files
becomes a marker line with the same custom id. With ``--key`` every file the
key owns is rewritten that way, including uploads no batch used (kept, not
deleted, so file ids and line counts stay valid for the client).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from pilothouse.batches.tables import batch_lines, batches, files

MARKER: dict[str, Any] = {"erased": True}
_NOT_CONTENT = frozenset(
    {"custom_id", "request_id", "method", "url", "system_fingerprint", "service_tier", "usage"}
)


@dataclass
class Plan:
    """What the subject owns in the batch stores, found before anything changes."""

    lines: list[Any] = field(default_factory=list)  # batch_lines rows
    line_ids: dict[str, set[str]] = field(default_factory=dict)  # batch id → custom ids
    whole_files: set[str] = field(default_factory=set)  # every line erased (``--key``)
    named_batches: dict[str, Any] = field(default_factory=dict)  # batch id → metadata
    strings: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.lines or self.whole_files or self.named_batches)


def _strings(obj: Any, out: set[str]) -> None:
    from pilothouse.guard.erase import strings_of

    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in _NOT_CONTENT:
                strings_of({k: v}, out)
    else:
        strings_of(obj, out)


def _line_strings(body: Any, result: Any, out: set[str]) -> None:
    """Content strings of a request and, for a 2xx answer, of its answer; generic error
    messages are shared by every user and identify nobody."""
    _strings(body, out)
    resp = result.get("response") if isinstance(result, dict) else None
    if isinstance(resp, dict) and 200 <= int(resp.get("status_code") or 0) < 300:
        _strings(resp.get("body"), out)


async def collect(
    conn: AsyncConnection,
    users: list[str],
    key: str | None,
    request: str | None,
    reqs: set[str],
) -> Plan:
    from pilothouse.guard.erase import _names_user

    plan = Plan()
    batch_ids: set[str] = set()
    if key is not None:
        q = select(batches.c.id).where(batches.c.key_id == key)
        batch_ids |= set((await conn.execute(q)).scalars())
        q = select(files.c.id).where(files.c.key_id == key)
        plan.whole_files |= set((await conn.execute(q)).scalars())
    if users:
        q = select(batches.c.id, batches.c.metadata).where(batches.c.metadata.isnot(None))
        for bid, meta in (await conn.execute(q)).all():
            if _names_user(meta, users):
                batch_ids.add(bid)
                plan.named_batches[bid] = meta
    conds = []
    if batch_ids:
        conds.append(batch_lines.c.batch_id.in_(batch_ids))
    ids = {request} if request is not None else reqs if users else set()
    if ids:
        conds.append(batch_lines.c.request_id.in_(ids))
    for cond in conds:
        for row in (await conn.execute(select(batch_lines).where(cond))).mappings():
            if row["custom_id"] in plan.line_ids.get(row["batch_id"], set()):
                continue
            plan.lines.append(row)
            plan.line_ids.setdefault(row["batch_id"], set()).add(row["custom_id"])
            _line_strings(row["body"], row["result"], plan.strings)
    for fid in plan.whole_files:
        content = (await conn.execute(select(files.c.content).where(files.c.id == fid))).scalar()
        for obj in _parsed(content or b""):
            _line_strings(obj.get("body"), obj, plan.strings)
    return plan


def _parsed(content: bytes) -> list[dict[str, Any]]:
    out = []
    for raw in content.splitlines():
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def _erased_line(obj: Any) -> dict[str, Any]:
    """A marker line keeping the ids, method, url and status that counts reconcile with."""
    if not isinstance(obj, dict):
        return dict(MARKER)
    out: dict[str, Any] = {k: obj[k] for k in ("id", "custom_id", "method", "url") if k in obj}
    if "body" in obj:
        out["body"] = dict(MARKER)
    resp = obj.get("response")
    if isinstance(resp, dict):
        keep = {k: resp[k] for k in ("status_code", "request_id") if k in resp}
        out["response"] = {**keep, "body": dict(MARKER)}
    if "error" in obj:
        out["error"] = dict(MARKER) if obj["error"] is not None else None
    return out or dict(MARKER)


def _rewrite(content: bytes, custom_ids: set[str] | None) -> bytes | None:
    """``content`` with the lines of ``custom_ids`` (all lines when None) erased; None
    when nothing changed."""
    lines, changed = [], False
    for raw in content.splitlines():
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        cid = obj.get("custom_id") if isinstance(obj, dict) else None
        if custom_ids is None or cid in custom_ids:
            new = orjson.dumps(_erased_line(obj))
            changed = changed or new != raw
            lines.append(new)
        else:
            lines.append(raw)
    return b"".join(line + b"\n" for line in lines) if changed else None


async def apply(conn: AsyncConnection, plan: Plan) -> dict[str, int]:
    """Erase what ``collect`` found; rows changed per store."""
    from pilothouse.guard.erase import scrub

    out: dict[str, int] = {}
    for row in plan.lines:
        result = _erased_line(row["result"]) if row["result"] is not None else None
        await conn.execute(
            update(batch_lines)
            .where(batch_lines.c.batch_id == row["batch_id"], batch_lines.c.line == row["line"])
            .values(body=dict(MARKER), result=result)
        )
    if plan.lines:
        out["batch_lines"] = len(plan.lines)
    for bid, meta in plan.named_batches.items():
        await conn.execute(
            update(batches).where(batches.c.id == bid).values(metadata=scrub(meta, []))
        )
    if plan.named_batches:
        out["batches"] = len(plan.named_batches)
    targets: dict[str, set[str] | None] = {fid: None for fid in plan.whole_files}
    if plan.line_ids:
        cols = (
            batches.c.id,
            batches.c.input_file_id,
            batches.c.output_file_id,
            batches.c.error_file_id,
        )
        q = select(*cols).where(batches.c.id.in_(list(plan.line_ids)))
        for bid, *fids in (await conn.execute(q)).all():
            for fid in fids:
                if fid is not None and targets.get(fid, set()) is not None:
                    targets[fid] = (targets.get(fid) or set()) | plan.line_ids[bid]
    changed = 0
    for fid, custom_ids in targets.items():
        content = (await conn.execute(select(files.c.content).where(files.c.id == fid))).scalar()
        new = _rewrite(content or b"", custom_ids)
        if new is not None:
            rewrite = update(files).where(files.c.id == fid)
            await conn.execute(rewrite.values(content=new, bytes=len(new)))
            changed += 1
    if changed:
        out["files"] = changed
    return out


async def residue(conn: AsyncConnection, values: list[str]) -> dict[str, int]:
    """Rows of the batch stores still holding any erased value (file bytes read as UTF-8)."""
    from pilothouse.guard.erase import _contains

    lines = 0
    for row in (await conn.execute(select(batch_lines.c.body, batch_lines.c.result))).all():
        if any(_contains(v, values) for v in row):
            lines += 1
    held = 0
    for (content,) in (await conn.execute(select(files.c.content))).all():
        if _contains(bytes(content or b"").decode("utf-8", "replace"), values):
            held += 1
    named = 0
    for (meta,) in (await conn.execute(select(batches.c.metadata))).all():
        if _contains(meta, values):
            named += 1
    return {"batch_lines": lines, "files": held, "batches": named}
