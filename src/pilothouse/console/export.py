"""CSV and JSONL export of the request log's filtered set (the same filters as the page).

One row per request, newest first, capped at :data:`MAX_ROWS`; money is the exact
USD string, never a float. Only metadata fields that name who and what (user,
session, feature, team, task) are exported, never message content.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pilothouse.console import queries
from pilothouse.console.auth import Session
from pilothouse.console.web import PREFIX, secure
from pilothouse.gateway.runtime import Runtime
from pilothouse.limits.money import pico_to_str
from pilothouse.store.search_index import catch_up

if TYPE_CHECKING:
    from pilothouse.console.handlers import Console

MAX_ROWS = 10_000
META = ("user", "session", "feature", "team", "task_id")
COLUMNS = (
    "request_id", "created_at", "key_id", "alias", "provider", "upstream_model", "status",
    "error_type", "stream", "attempts", "input_tokens", "output_tokens", "cost_usd",
    "latency_ms", "ttft_ms", "cache_hit", "trace_id", *META,
)  # fmt: skip


def export_row(row: dict[str, Any]) -> dict[str, Any]:
    meta = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
    out = {c: row.get(c) for c in COLUMNS if c in row}
    out["created_at"] = row["created_at"].isoformat()
    out["cost_usd"] = pico_to_str(int(row.get("cost_pico") or 0))
    out["trace_id"] = row.get("trace_id")
    for name in META:
        value = (meta or {}).get(name)
        out[name] = None if value is None else str(value)
    return {c: out.get(c) for c in COLUMNS}


class ExportPages:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def export(self, rt: Runtime, request: Request, session: Session) -> Response:
        fmt = request.query_params.get("format", "csv")
        may_search = session.principal.role != "viewer"  # no content search for viewers
        parsed = queries.parse_filters(request.query_params, may_search=may_search)
        if fmt not in ("csv", "jsonl") or parsed.errors:
            errors = parsed.errors or [f"“format” must be csv or jsonl; got {fmt[:16]!r}."]
            return self.console.render(
                request, "error.html", session, 400, nav="requests", title="Cannot export",
                message=" ".join(errors),
            )  # fmt: skip
        await rt.ledger.flush()
        if parsed.filters.q:
            await catch_up(rt.engine)
        async with rt.engine.connect() as conn:
            query = queries.log_query(parsed.filters, None, MAX_ROWS - 1)
            rows = [export_row(dict(r._mapping)) for r in await conn.execute(query)]
        if fmt == "jsonl":
            body = b"".join(orjson.dumps(r) + b"\n" for r in rows)
            media = "application/x-ndjson"
        else:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            body, media = buffer.getvalue().encode(), "text/csv; charset=utf-8"
        headers = {"content-disposition": f'attachment; filename="requests.{fmt}"'}
        return secure(Response(body, media_type=media, headers=headers))

    def routes(self) -> list[BaseRoute]:
        path = f"{PREFIX}/export"
        return [Route(path, self.console.page(self.export, "traces.read"), methods=["GET"])]
