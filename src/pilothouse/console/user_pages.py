"""The users page: requests, cost and feedback per user over a time range.

A request's user is its user entity (teams and users, limits/scopes.py: the key's
or the request's ``user_id``), else the ``user`` field of its
``x-pilothouse-metadata``, the same rule as the usage page's "by user" and the
cost report. Feedback is joined on the request it rates. Each row links to that
user's requests in the request log (whose ``user`` filter follows the same rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pilothouse.console import queries
from pilothouse.console.auth import Session
from pilothouse.console.web import PREFIX
from pilothouse.costs.report import meta_text
from pilothouse.gateway.runtime import Runtime
from pilothouse.store.tables import feedback as fb
from pilothouse.store.tables import usage_records as u

if TYPE_CHECKING:
    from pilothouse.console.handlers import Console

MAX_USERS = 500
DEFAULT_RANGE = "30d"


@dataclass(frozen=True, slots=True)
class UserRow:
    user: str
    name: str | None  # the user entity's name, when the user is one
    requests: int
    errors: int
    cost_pico: int
    last_seen: datetime | None
    feedback: int
    thumbs_up: int
    thumbs_down: int
    mean_score: float | None


def user_expr() -> Any:
    return func.coalesce(u.c.user_id, meta_text(u.c.metadata, "user"))


def _range(since: datetime | None, until: datetime | None) -> list[Any]:
    conds = [user_expr().is_not(None)]
    if since is not None:
        conds.append(u.c.created_at >= since)
    if until is not None:
        conds.append(u.c.created_at < until)
    return conds


async def per_user(
    engine: AsyncEngine, *, since: datetime | None, until: datetime | None
) -> tuple[list[UserRow], bool]:
    """Users by cost, most expensive first; and whether more than ``MAX_USERS`` exist."""
    user = user_expr().label("user")
    conds = _range(since, until)
    usage_q = (
        select(
            user, func.count().label("requests"),
            func.sum(case((u.c.status >= 400, 1), else_=0)).label("errors"),
            func.coalesce(func.sum(u.c.cost_pico), 0).label("cost"),
            func.max(u.c.created_at).label("last_seen"),
        )
        .where(*conds).group_by(user_expr())
        .order_by(func.coalesce(func.sum(u.c.cost_pico), 0).desc(), user_expr())
        .limit(MAX_USERS + 1)
    )  # fmt: skip
    fb_q = (
        select(
            user, func.count(fb.c.id).label("feedback"),
            func.sum(case((fb.c.success.is_(True), 1), else_=0)).label("up"),
            func.sum(case((fb.c.success.is_(False), 1), else_=0)).label("down"),
            func.avg(fb.c.score).label("score"),
        )
        .select_from(fb.join(u, fb.c.request_id == u.c.request_id))
        .where(*conds).group_by(user_expr())
    )  # fmt: skip
    async with engine.connect() as conn:
        rows = [r._mapping for r in await conn.execute(usage_q)]
        votes: dict[Any, Mapping[str, Any]] = {
            r.user: dict(r._mapping) for r in await conn.execute(fb_q)
        }
    out = []
    for r in rows[:MAX_USERS]:
        v: Mapping[str, Any] = votes.get(r["user"], {})
        score = v.get("score")
        out.append(
            UserRow(
                user=str(r["user"]), name=None, requests=int(r["requests"]),
                errors=int(r["errors"] or 0), cost_pico=int(r["cost"]),
                last_seen=r["last_seen"], feedback=int(v.get("feedback") or 0),
                thumbs_up=int(v.get("up") or 0), thumbs_down=int(v.get("down") or 0),
                mean_score=float(score) if score is not None else None,
            )
        )  # fmt: skip
    return out, len(rows) > MAX_USERS


class UserPages:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def users_page(self, rt: Runtime, request: Request, session: Session) -> Response:
        params = dict(request.query_params)
        params.setdefault("since", DEFAULT_RANGE)
        parsed = queries.parse_filters(params)
        filters, errors = parsed.filters, parsed.errors
        await rt.ledger.flush()
        rows, more = await per_user(rt.engine, since=filters.since, until=filters.until)
        names = {s.id: s.name for s in await rt.scopes.list_all("user")}
        rows = [replace(r, name=names.get(r.user)) for r in rows]
        return self.console.render(
            request, "users.html", session, nav="users", rows=rows, more=more, errors=errors,
            since=filters.since_text, until=filters.until_text, max_users=MAX_USERS,
            total_cost=sum(r.cost_pico for r in rows),
        )  # fmt: skip

    def routes(self) -> list[BaseRoute]:
        page = self.console.page(self.users_page, "usage.read")
        return [Route(f"{PREFIX}/users", page, methods=["GET"])]
