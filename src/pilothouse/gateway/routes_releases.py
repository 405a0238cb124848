"""Admin API for releases: the audit log, route versions and request lineage."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.audit import log
from pilothouse.costs.usage_query import parse_time
from pilothouse.gateway.routes_admin import admin
from pilothouse.gateway.routes_openai import json_response
from pilothouse.gateway.runtime import Runtime
from pilothouse.inputs import INT64_MAX, query_int
from pilothouse.releases import routes as route_versions
from pilothouse.releases.lineage import lineage

AUDIT_PAGE = 500


def _int_param(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    return query_int(raw, name, 0, INT64_MAX)


async def audit_list(rt: Runtime, request: Request) -> Response:
    """``GET /admin/audit?since=&actor=&action=&cursor=``: rows oldest first, paged by seq."""
    q = request.query_params
    limit = min(_int_param(q.get("limit"), "limit", AUDIT_PAGE), AUDIT_PAGE) or AUDIT_PAGE
    rows = await log.read_rows(
        rt.engine,
        since=parse_time(q.get("since"), "since"),
        actor=q.get("actor") or None,
        action=q.get("action") or None,
        after_seq=_int_param(q.get("cursor"), "cursor", 0),
        limit=limit,
    )
    next_cursor = str(rows[-1]["seq"]) if len(rows) == limit else None
    return json_response({"data": [log.public(r) for r in rows], "next_cursor": next_cursor})


async def audit_head(rt: Runtime, request: Request) -> Response:
    seq, digest = await log.head(rt.engine)
    return json_response({"seq": seq, "head": digest})


async def routes_list(rt: Runtime, request: Request) -> Response:
    versions = await route_versions.list_versions(rt.engine)
    return json_response({"current": rt.route_version, "data": versions})


async def routes_show(rt: Runtime, request: Request) -> Response:
    return json_response(await route_versions.get_version(rt.engine, request.path_params["ref"]))


async def lineage_of(rt: Runtime, request: Request) -> Response:
    await rt.ledger.flush()
    return json_response(await lineage(rt.engine, request.path_params["request_id"]))


def routes() -> list[Route]:
    return [
        Route("/admin/audit", admin(audit_list, "audit.read"), methods=["GET"]),
        Route("/admin/audit/head", admin(audit_head, "audit.read"), methods=["GET"]),
        Route("/admin/lineage/{request_id}", admin(lineage_of, "lineage.read"), methods=["GET"]),
        Route("/admin/routes", admin(routes_list, "routes.read"), methods=["GET"]),
        Route("/admin/routes/{ref}", admin(routes_show, "routes.read"), methods=["GET"]),
    ]
