"""The request log's guard filters (``guard``, ``verdict``, ``entity``): the guards page's
drill-down, as one SQL condition that works on SQLite and PostgreSQL.

It matches the receipt summary every enforcement span carries (the
``x-pilothouse-guards`` text: ``policy=P; stage.guard=verdict(ENTITY:n,...)``),
whose grain — the most severe verdict per stage and guard — is the grain the
guards page counts at, so a drill-down lists exactly the requests it counted.
"""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from pilothouse.costs.report import meta_text
from pilothouse.store.tables import spans, traces, usage_records

RECEIPT_SPAN = "guard.enforcement"
SUMMARY_ATTR = "pilothouse.guard.summary"
# What a guard did to a request, most severe first; ``acted`` is any of them.
ACTIONS = ("error", "block", "redact", "pseudonymize", "flag")
VERDICTS = (*ACTIONS, "pass", "acted")


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like(column: ColumnElement[str], patterns: list[str]) -> ColumnElement[bool]:
    return or_(*(column.like(p, escape="\\") for p in patterns))


def _verdict_patterns(guard: str | None, verdict: str) -> list[str]:
    # One summary part is "stage.guard=verdict", then "(counts)", "; next part" or the end.
    head = f"%; %.{_escape(guard)}={verdict}" if guard else f"%; %={verdict}"
    return [head, head + "(%", head + ";%"]


def guard_condition(
    guard: str | None, verdict: str | None, entity: str | None
) -> ColumnElement[bool]:
    """``usage_records`` rows whose request's receipt shows ``guard`` reaching ``verdict``
    (``acted``: any action; no verdict with a guard: ``acted``) and/or finding ``entity``."""
    summary = meta_text(spans.c.attributes, SUMMARY_ATTR)
    conds: list[ColumnElement[bool]] = [spans.c.name == RECEIPT_SPAN]
    if guard or verdict:
        wanted = ACTIONS if verdict in (None, "acted") else (verdict,)
        conds.append(or_(*(_like(summary, _verdict_patterns(guard, v)) for v in wanted)))
    if entity:
        e = _escape(entity)
        conds.append(_like(summary, [f"%({e}:%", f"%,{e}:%"]))
    matching = (
        select(traces.c.request_id)
        .select_from(traces.join(spans, spans.c.trace_id == traces.c.trace_id))
        .where(and_(*conds), traces.c.request_id.is_not(None))
    )
    return usage_records.c.request_id.in_(matching)
