"""Erasure with a receipt: one subject's content removed from every store, then proven gone.

A subject is a user id (trace metadata ``user_id``), a key id or a request id.
Its traces lose their content; every other store (spans, usage metadata,
feedback, eval results and review items, stored Responses conversations,
the Redis response cache and pseudonym mappings) is scrubbed of the exact
strings the subject sent or received; Batch API lines and files are erased
by ownership (``erase_batches``), since their content is stored raw. Usage
and cost numbers stay. The residue scan then searches every store for those
strings and for the subject's id: the erasure is only reported clean if none remain.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Table, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pilothouse.evals.tables import eval_online_scores, eval_results, eval_review
from pilothouse.store.tables import feedback, responses, spans, traces, usage_records

ERASED = "[erased]"
MIN_VALUE = 6  # shorter strings ("hi", "ok") are not identifying and would match everywhere
_SUBJECT_KEYS = ("user", "user_id", "session", "session_id", "end_user")

# (store label, table, primary-key columns, JSON/text columns that may hold content)
SCRUBBED: tuple[tuple[str, Table, tuple[str, ...], tuple[str, ...]], ...] = (
    ("traces", traces, ("trace_id",), ("content", "metadata", "user_id", "session_id")),
    ("spans", spans, ("trace_id", "span_id"), ("attributes", "events", "status_message")),
    ("usage_records", usage_records, ("id",), ("metadata",)),
    ("feedback", feedback, ("id",), ("comment", "metadata")),
    ("eval_results", eval_results, ("id",), ("case", "sample", "error")),
    ("eval_review", eval_review, ("id",), ("payload", "note")),
    ("eval_online_scores", eval_online_scores, ("id",), ("explanation", "error")),
    ("responses", responses, ("id",), ("conversation", "response")),
)


@dataclass
class Receipt:
    subject: str
    found: bool = False
    values: int = 0
    touched: dict[str, int] = field(default_factory=dict)
    residue: dict[str, int] = field(default_factory=dict)
    audit_seq: int | None = None

    @property
    def clean(self) -> bool:
        return not any(self.residue.values())

    def public(self) -> dict[str, Any]:
        return {
            "subject": self.subject, "found": self.found, "values_erased": self.values,
            "stores": self.touched, "residue": self.residue, "clean": self.clean,
            "audit_seq": self.audit_seq,
        }  # fmt: skip


def scrub(obj: Any, values: list[str]) -> Any:
    """``obj`` with every occurrence of every value replaced (longest first)."""
    if isinstance(obj, str):
        for v in values:
            if v in obj:
                obj = obj.replace(v, ERASED)
        return obj
    if isinstance(obj, list):
        return [scrub(x, values) for x in obj]
    if isinstance(obj, dict):
        return {k: (ERASED if k in _SUBJECT_KEYS else scrub(v, values)) for k, v in obj.items()}
    return obj


def strings_of(obj: Any, out: set[str]) -> None:
    if isinstance(obj, str):
        if len(obj.strip()) >= MIN_VALUE:
            out.add(obj)
    elif isinstance(obj, list):
        for x in obj:
            strings_of(x, out)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if k not in ("model", "role", "type", "object", "finish_reason", "id", "name"):
                strings_of(v, out)


def _contains(row_value: Any, values: list[str]) -> bool:
    if row_value is None:
        return False
    text = row_value if isinstance(row_value, str) else orjson.dumps(row_value).decode()
    return any(v in text or orjson.dumps(v).decode()[1:-1] in text for v in values)


async def _subject_traces(
    conn: AsyncConnection, users: list[str], key: str | None, request: str | None
) -> list[Any]:
    cond = (
        traces.c.user_id.in_(users) if users
        else traces.c.key_id == key if key is not None
        else traces.c.request_id == request
    )  # fmt: skip
    return list((await conn.execute(select(traces).where(cond))).mappings())


async def _subject_usage(
    conn: AsyncConnection, users: list[str], key: str | None, request: str | None, reqs: set[str]
) -> list[Any]:
    if key is not None:
        cond = usage_records.c.key_id == key
    elif request is not None:
        cond = usage_records.c.request_id == request
    else:
        cond = (
            usage_records.c.request_id.in_(reqs) if reqs else usage_records.c.metadata.isnot(None)
        )
    rows = list((await conn.execute(select(usage_records).where(cond))).mappings())
    if users:
        rows = [r for r in rows if r["request_id"] in reqs or _names_user(r["metadata"], users)]
    return rows


def _names_user(meta: Any, users: list[str]) -> bool:
    return isinstance(meta, dict) and any(meta.get(k) in users for k in _SUBJECT_KEYS)


async def erase(
    engine: AsyncEngine,
    *,
    user: str | None = None,
    key: str | None = None,
    request: str | None = None,
    redis: Any = None,
    redis_prefix: str = "pilothouse:",
    actor: str = "cli",
    memory: list[Any] | None = None,
    rag: tuple[Any, list[str]] | None = None,
    stored_as: str | None = None,
) -> Receipt:
    """``memory``: a running gateway's in-process stores (response cache, pseudonym
    mappings); ``rag``: the RAG store and its collections; ``stored_as``: the user id
    as metadata privacy stored it (its keyed pseudonym), erased and searched for too."""
    kind, ident = next((k, v) for k, v in (("user", user), ("key", key), ("request", request)) if v)
    receipt = Receipt(f"{kind}:{_fingerprint(ident)}")
    async with engine.begin() as conn:
        users = [u for u in (user, stored_as) if u] if user is not None else []
        subject = await _subject_traces(conn, users, key, request)
        reqs = {r["request_id"] for r in subject if r["request_id"]}
        if request is not None:
            reqs.add(request)
        usage = await _subject_usage(conn, users, key, request, reqs)
        reqs |= {r["request_id"] for r in usage if r["request_id"]}
        found: set[str] = set()
        for row in subject:
            strings_of(row["content"], found)
        for table, col in ((feedback, feedback.c.comment), (responses, responses.c.conversation)):
            where = (
                responses.c.key_id == key if table is responses and key is not None
                else feedback.c.request_id.in_(reqs) if table is feedback and reqs else None
            )  # fmt: skip
            if where is not None:
                for r in (await conn.execute(select(col).where(where))).scalars():
                    strings_of(r, found)
        from pilothouse.guard import erase_batches

        batch_plan = await erase_batches.collect(conn, users, key, request, reqs)
        found |= batch_plan.strings
        owned_docs = 0
        if rag is not None and user is not None:
            from pilothouse.guard.erase_local import erase_rag

            owned_docs = await erase_rag(rag[0], rag[1], user)
        receipt.found = bool(subject or usage or found or owned_docs or batch_plan)
        if owned_docs:
            receipt.touched["rag_documents"] = owned_docs
        found.update(users)
        values = sorted(found, key=len, reverse=True)
        receipt.values = len(values)
        if not receipt.found:
            return receipt
        trace_ids = [r["trace_id"] for r in subject]
        if trace_ids:
            res = await conn.execute(
                update(traces).where(traces.c.trace_id.in_(trace_ids)).values(content=None)
            )
            receipt.touched["traces"] = res.rowcount or 0
        for label, table, pk, cols in SCRUBBED:
            changed = await _scrub_table(conn, table, pk, cols, values)
            if changed:
                receipt.touched[label] = max(receipt.touched.get(label, 0), changed)
        if key is not None:
            res = await conn.execute(responses.delete().where(responses.c.key_id == key))
            if res.rowcount:
                receipt.touched["responses"] = receipt.touched.get("responses", 0) + res.rowcount
        receipt.touched.update(await erase_batches.apply(conn, batch_plan))
    if redis is not None:
        receipt.touched.update(await _scrub_redis(redis, redis_prefix, values))
    for store in memory or []:
        receipt.touched[store.label] = store.erase_values(values)
    receipt.audit_seq = await _audit(engine, actor, receipt)
    receipt.residue = await residue(engine, values, redis, redis_prefix)
    for store in memory or []:
        receipt.residue[store.label] = store.erase_values(values, delete=False)
    if rag is not None:
        from pilothouse.guard.erase_local import rag_residue

        receipt.residue["rag_documents"] = await rag_residue(rag[0], rag[1], values)
    return receipt


async def _scrub_table(
    conn: AsyncConnection,
    table: Table,
    pk: tuple[str, ...],
    cols: tuple[str, ...],
    values: list[str],
) -> int:
    if not values:
        return 0
    present = [c for c in cols if c in table.c]
    filters = [table.c[c].isnot(None) for c in present]
    rows = (
        await conn.execute(select(*[table.c[c] for c in (*pk, *present)]).where(or_(*filters)))
    ).mappings()
    changed = 0
    for row in list(rows):
        new = {c: scrub(row[c], values) for c in present if _contains(row[c], values)}
        if not new:
            continue
        where = [table.c[k] == row[k] for k in pk]
        await conn.execute(update(table).where(*where).values(**new))
        changed += 1
    return changed


async def _scrub_redis(
    redis: Any, prefix: str, values: list[str], *, delete: bool = True
) -> dict[str, int]:
    """Delete (or, for the residue scan, count) Redis entries holding any value."""
    out: dict[str, int] = {}
    patterns = (
        ("response_cache", prefix + "cache:*"),
        ("pseudonym_mappings", prefix + "guard:pseudo:*"),
    )
    for label, pattern in patterns:
        n = 0
        async for k in redis.scan_iter(match=pattern):
            kind = await redis.type(k)
            kind = kind.decode() if isinstance(kind, bytes) else kind
            raw: Any = await (redis.hgetall(k) if kind == "hash" else redis.get(k))
            if isinstance(raw, dict):
                raw = {_text(a): _text(b) for a, b in raw.items()}
            blob = raw if isinstance(raw, dict) else _text(raw)
            if _contains(blob, values):
                n += int(await redis.delete(k)) if delete else 1
        if n or not delete:
            out[label] = n
    return out


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


async def residue(
    engine: AsyncEngine, values: list[str], redis: Any = None, prefix: str = "pilothouse:"
) -> dict[str, int]:
    """How many rows (or Redis entries) in each store still hold any erased value."""
    out: dict[str, int] = {}
    if not values:
        return out
    async with engine.connect() as conn:
        for label, table, _pk, cols in SCRUBBED:
            present = [table.c[c] for c in cols if c in table.c]
            hits = 0
            for row in (await conn.execute(select(*present))).all():
                if any(_contains(v, values) for v in row):
                    hits += 1
            out[label] = hits
        from pilothouse.releases.tables import audit_log

        audit_hits = 0
        for row in (await conn.execute(select(audit_log.c.target, audit_log.c.details))).all():
            if any(_contains(v, values) for v in row):
                audit_hits += 1
        out["audit_log"] = audit_hits
        from pilothouse.guard.erase_batches import residue as batch_residue

        out.update(await batch_residue(conn, values))
    if redis is not None:
        out.update(await _scrub_redis(redis, prefix, values, delete=False))
    return out


async def _audit(engine: AsyncEngine, actor: str, receipt: Receipt) -> int | None:
    from pilothouse.audit import log

    row = await log.append(
        engine, actor=actor, action="privacy.erase", target=receipt.subject,
        details={"stores": receipt.touched, "values_erased": receipt.values},
    )  # fmt: skip
    seq = row.get("seq")
    return int(seq) if seq is not None else None


def _fingerprint(ident: str) -> str:
    """The subject as the receipt and audit log name it: a digest, not the personal id."""
    return hashlib.sha256(ident.encode()).hexdigest()[:16]
