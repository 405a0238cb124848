"""The session view: every request of one ``session`` (request metadata), oldest first,
read as a conversation, with the session's total cost and latency.

Content comes from each request's stored trace, as the request page shows it;
the viewer role sees the requests, costs and latencies but no content.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pilothouse.console import queries
from pilothouse.console.auth import Session
from pilothouse.console.reconstruct import reconstruct
from pilothouse.console.web import PREFIX
from pilothouse.costs.report import meta_text
from pilothouse.gateway.runtime import Runtime
from pilothouse.store.tables import usage_records as u

if TYPE_CHECKING:
    from pilothouse.console.handlers import Console

MAX_TURNS = 200


class SessionPages:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def session_page(self, rt: Runtime, request: Request, session: Session) -> Response:
        name = request.path_params["session_id"][:200]
        await rt.ledger.flush()
        await rt.telemetry.traces.flush()
        where = meta_text(u.c.metadata, "session") == name
        rows_q = (
            select(u.c.request_id, u.c.created_at, u.c.alias, u.c.status, u.c.cost_pico,
                   u.c.latency_ms)
            .where(where).order_by(u.c.created_at, u.c.id).limit(MAX_TURNS)
        )  # fmt: skip
        totals_q = select(
            func.count(), func.coalesce(func.sum(u.c.cost_pico), 0),
            func.coalesce(func.sum(u.c.latency_ms), 0.0),
        ).where(where)  # fmt: skip
        async with rt.engine.connect() as conn:
            rows = [dict(r._mapping) for r in await conn.execute(rows_q)]
            count, cost, latency = (await conn.execute(totals_q)).one()
        if not count:
            return self.console.render(
                request, "error.html", session, 404, nav="requests", title="Not found",
                message=f"No request in the store has session {name!r}.",
            )  # fmt: skip
        redact = session.principal.role == "viewer"
        turns: list[dict[str, Any]] = []
        for row in rows:
            rec = None
            if not redact:
                record = await queries.load_request(rt.engine, row["request_id"])
                rec = reconstruct((record.trace or {}).get("content"), record.spans)
            turns.append({**row, "rec": rec})
        return self.console.render(
            request, "session.html", session, nav="requests", session_name=name, turns=turns,
            count=int(count), cost_pico=int(cost), latency_ms=float(latency), redact=redact,
            truncated=int(count) > len(rows),
        )  # fmt: skip

    def routes(self) -> list[BaseRoute]:
        path = f"{PREFIX}/sessions/{{session_id}}"
        return [Route(path, self.console.page(self.session_page, "traces.read"), methods=["GET"])]
