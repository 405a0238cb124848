"""The web console at ``/console``: sign-in, request log, request detail, usage and costs.

Every page needs a session; every POST needs its CSRF token. Pages only read
the store (SQLAlchemy Core on ``rt.engine``) and render server-side templates.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pilothouse.console import queries, receipts, usage, views
from pilothouse.console.annotate import AnnotatePages
from pilothouse.console.auth import (
    ABSOLUTE_TIMEOUT_S,
    LoginCsrf,
    Session,
    check_session_csrf,
)
from pilothouse.console.dashboard_pages import DashboardPages
from pilothouse.console.eval_pages import EvalPages
from pilothouse.console.export import ExportPages
from pilothouse.console.guard_pages import GuardPages
from pilothouse.console.key_pages import KeyPages
from pilothouse.console.playground_pages import PlaygroundPages
from pilothouse.console.prompt_pages import PromptPages
from pilothouse.console.rag_pages import RagPages
from pilothouse.console.rollout_pages import RolloutPages
from pilothouse.console.session_backends import SessionBackend, backend_for
from pilothouse.console.session_pages import SessionPages
from pilothouse.console.user_pages import UserPages
from pilothouse.console.web import (
    LOGIN_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    StaticFiles,
    clear_cookie,
    client_id,
    cross_site,
    html,
    login_url,
    page_context,
    read_form,
    redirect,
    safe_next,
    set_cookie,
    sign_in,
    still_valid,
    template_env,
)
from pilothouse.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    PilothouseError,
    RateLimitError,
)
from pilothouse.gateway.authz import allows
from pilothouse.gateway.runtime import Runtime
from pilothouse.releases.lineage import lineage

log = logging.getLogger("pilothouse.console")
Page = Callable[[Runtime, Request, Session], Awaitable[Response]]
LOGIN_FORM_TTL_S = 3600
DEFAULT_RANGE = "30d"
ANNOTATED = {
    "feedback": "Your feedback is saved.",
    "review": "Sent to the review queue.",
    "queued": "This request is already in the review queue.",
}


class Console:
    """One console per app: its sessions, CSRF secret and templates live here."""

    def __init__(self, sessions: SessionBackend | None = None) -> None:
        # Bound on first use to the runtime's Redis or store (console/session_backends.py),
        # so a session and a login form work on every replica.
        self._sessions = sessions
        self._csrf: LoginCsrf | None = None
        self.env = template_env()
        self.static = StaticFiles()

    async def bind(self, rt: Runtime) -> tuple[SessionBackend, LoginCsrf]:
        if self._sessions is None:
            self._sessions = backend_for(rt.engine, rt.redis, rt.settings.redis.prefix)
        if self._csrf is None:
            self._csrf = LoginCsrf(await self._sessions.secret())
        return self._sessions, self._csrf

    def render(
        self, request: Request, name: str, session: Session | None, status: int = 200, **ctx: Any
    ) -> Response:
        context = page_context(request, session, static_version=self.static.version, **ctx)
        return html(self.env.get_template(name).render(context), status)

    async def session_for(self, rt: Runtime, request: Request) -> Session | None:
        sessions, csrf = await self.bind(rt)
        token = request.cookies.get(SESSION_COOKIE)
        session = await sessions.get(token)
        if session is not None and not await still_valid(rt, csrf, session):
            await sessions.end(token)
            return None
        return session

    def page(
        self, handler: Page, action: str = "console.read"
    ) -> Callable[[Request], Awaitable[Response]]:
        """A signed-in page whose ``action`` the principal's role must allow (else 403)."""

        async def endpoint(request: Request) -> Response:
            rt: Runtime = request.app.state.runtime
            session = await self.session_for(rt, request)
            if session is None:
                return redirect(login_url(request))
            if not allows(session.principal.role, action):
                return self.render(
                    request,
                    "error.html",
                    session,
                    403,
                    title="Not for your role",
                    message=f"The {session.principal.role} role may not open this page.",
                )
            try:
                return await handler(rt, request, session)
            except Exception:
                log.exception("console page %s failed", request.url.path)
                return self.render(
                    request,
                    "error.html",
                    session,
                    500,
                    title="Something went wrong",
                    message="The page could not be built; the error is logged.",
                )

        return endpoint

    # -- sign in and out ---------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        return redirect(f"{PREFIX}/requests")

    def login_page(
        self, request: Request, status: int = 200, error: str | None = None, notice: str = ""
    ) -> Response:
        assert self._csrf is not None, "bind() runs before any login page"
        nonce, token = self._csrf.issue()
        response = self.render(
            request,
            "login.html",
            None,
            status,
            login_token=token,
            error=error,
            notice=notice,
            next=safe_next(request.query_params.get("next")),
        )
        set_cookie(response, request, LOGIN_COOKIE, nonce, LOGIN_FORM_TTL_S)
        return response

    async def login_form(self, request: Request) -> Response:
        rt: Runtime = request.app.state.runtime
        if await self.session_for(rt, request) is not None:
            return redirect(safe_next(request.query_params.get("next")))
        notice = "You have signed out." if request.query_params.get("signed_out") else ""
        return self.login_page(request, notice=notice)

    async def login(self, request: Request) -> Response:
        rt: Runtime = request.app.state.runtime
        sessions, csrf = await self.bind(rt)
        form = await read_form(request)
        nonce = request.cookies.get(LOGIN_COOKIE)
        if cross_site(request) or not csrf.check(nonce, form.get("csrf_token")):
            return self.forbidden(request, None)
        secret = form.get("admin_key", "").strip()
        if not secret:
            return self.login_page(request, 400, "Enter the admin key.")
        try:
            principal = await sign_in(rt, csrf, secret, client_id(request))
        except RateLimitError as exc:
            # The gateway's failed-auth throttle (per source and principal); a right key passes.
            message = f"Too many failed sign-ins. Try again in {int(exc.retry_after) + 1} seconds."
            return self.login_page(request, 429, message)
        except (AuthenticationError, PermissionDeniedError) as exc:
            message = (
                "This key is valid but does not have the admin scope (no admin role)."
                if isinstance(exc, PermissionDeniedError)
                else "That is not a valid admin key."
            )
            return self.login_page(request, exc.status, message)
        except PilothouseError as exc:
            return self.login_page(request, exc.status, f"Sign-in failed: {exc.message}")
        await sessions.end(request.cookies.get(SESSION_COOKIE))  # no session fixation
        token, _ = await sessions.create(principal)
        response = redirect(safe_next(form.get("next")))
        set_cookie(response, request, SESSION_COOKIE, token, ABSOLUTE_TIMEOUT_S)
        clear_cookie(response, request, LOGIN_COOKIE)
        return response

    async def logout(self, request: Request) -> Response:
        rt: Runtime = request.app.state.runtime
        session = await self.session_for(rt, request)
        form = await read_form(request)
        if session is None:
            return redirect(f"{PREFIX}/login")
        if cross_site(request) or not check_session_csrf(session, form.get("csrf_token")):
            return self.forbidden(request, session)
        sessions, _ = await self.bind(rt)
        await sessions.end(request.cookies.get(SESSION_COOKIE))
        response = redirect(f"{PREFIX}/login?signed_out=1")
        clear_cookie(response, request, SESSION_COOKIE)
        return response

    def forbidden(self, request: Request, session: Session | None) -> Response:
        return self.render(
            request,
            "error.html",
            session,
            403,
            title="Request refused",
            message="This form is missing its security token or came from another "
            "site. Reload the page and try again.",
        )

    # -- pages ---------------------------------------------------------------------------------

    async def requests_page(self, rt: Runtime, request: Request, session: Session) -> Response:
        may_search = session.principal.role != "viewer"  # console/search.py
        parsed = queries.parse_filters(request.query_params, may_search=may_search)
        cursor = None
        raw_cursor = request.query_params.get("cursor")
        if raw_cursor:
            try:
                cursor = queries.decode_position(parsed.filters, raw_cursor)
            except ValueError:
                parsed.errors.append(
                    "That page link is no longer valid; showing the newest requests."
                )
        await settle(rt)
        keys = await queries.list_keys(rt.engine)
        page = await queries.request_log(rt.engine, parsed.filters, cursor)
        return self.render(
            request,
            "requests.html",
            session,
            nav="requests",
            filters=parsed.filters,
            errors=parsed.errors,
            page=page,
            keys=keys,
            key_names={k.id: k.name for k in keys},
            aliases=sorted(rt.settings.models),
            status_choices=queries.STATUS_CHOICES,
            range_presets=queries.RANGE_PRESETS,
            may_search=may_search,
            capture=rt.settings.telemetry.capture_content,
            paged=cursor is not None,
        )

    async def request_detail(self, rt: Runtime, request: Request, session: Session) -> Response:
        request_id = request.path_params["request_id"][:64]
        await settle(rt)
        record = await queries.load_request(rt.engine, request_id)
        return await self._detail(rt, request, session, record, f"request {request_id}")

    async def trace_detail(self, rt: Runtime, request: Request, session: Session) -> Response:
        trace_id = request.path_params["trace_id"][:32]
        await settle(rt)
        record = await queries.load_trace(rt.engine, trace_id)
        return await self._detail(rt, request, session, record, f"trace {trace_id}")

    async def find(self, rt: Runtime, request: Request, session: Session) -> Response:
        """Jump straight to a request (``x-request-id``) or a trace (``x-pilothouse-trace-id``)."""
        ident = (request.query_params.get("id") or "").strip()[:64]
        if not ident:
            return redirect(f"{PREFIX}/requests")
        await settle(rt)
        if (await queries.load_request(rt.engine, ident)).found:
            return redirect(f"{PREFIX}/requests/{quote(ident, safe='')}")
        if (await queries.load_trace(rt.engine, ident[:32])).found:
            return redirect(f"{PREFIX}/traces/{quote(ident[:32], safe='')}")
        message = f"There is no request or trace with id {ident!r} in the store."
        return self.render(
            request, "error.html", session, 404, nav="requests", title="Not found", message=message
        )

    async def _detail(
        self, rt: Runtime, request: Request, session: Session, record: Any, what: str
    ) -> Response:
        if not record.found:
            return self.render(
                request,
                "error.html",
                session,
                404,
                nav="requests",
                title="Not found",
                message=f"There is no {what} in the store.",
            )
        # The receipt and retrieval spans are read before the viewer's redaction below:
        # a receipt holds no sensitive value; a retrieval's query (content) stays hidden.
        receipt = receipts.receipt(record.spans)
        retrievals = receipts.retrievals(
            record.spans, show_query=session.principal.role != "viewer"
        )
        if session.principal.role == "viewer":  # viewers read traces without content
            record = queries.RequestRecord(
                record.usage,
                {**record.trace, "content": None} if record.trace else None,
                [{**sp, "attributes": {}, "events": []} for sp in record.spans],
                [{**f, "comment": None} for f in record.feedback],
            )
        keys = await queries.list_keys(rt.engine)
        view = views.detail(record, {k.id: k.name for k in keys})
        found = None
        request_id = (record.usage or {}).get("request_id")
        if request_id:
            with contextlib.suppress(NotFoundError):  # no usage row yet, or a pruned version
                found = await lineage(rt.engine, str(request_id))
        done = ANNOTATED.get(request.query_params.get("annotated") or "", "")
        return self.render(
            request, "detail.html", session, nav="requests", view=view, lineage=found,
            may_annotate=bool(request_id) and allows(session.principal.role, "evals.review"),
            may_replay=bool(request_id) and allows(session.principal.role, "playground.use"),
            notice=done, receipt=receipt, retrievals=retrievals,
        )  # fmt: skip

    async def _range(self, request: Request) -> tuple[Any, list[str], str, str]:
        params = dict(request.query_params)
        params.setdefault("since", DEFAULT_RANGE)
        parsed = queries.parse_filters(params)
        return parsed.filters, parsed.errors, parsed.filters.since_text, parsed.filters.until_text

    async def usage_page(self, rt: Runtime, request: Request, session: Session) -> Response:
        filters, errors, since, until = await self._range(request)
        by = request.query_params.get("by", "model")
        if by not in usage.DIMENSIONS:
            errors.append(f"“by” must be one of {', '.join(usage.DIMENSIONS)}.")
            by = "model"
        await rt.ledger.flush()
        keys = await queries.list_keys(rt.engine)
        names = {k.id: k.name for k in keys}
        names.update({s.id: s.name for k in ("team", "user") for s in await rt.scopes.list_all(k)})
        report = await usage.daily(rt.engine, since=filters.since, until=filters.until)
        groups = await usage.breakdown(
            rt.engine, by, since=filters.since, until=filters.until, key_names=names
        )
        charts = [
            views.requests_per_day(report.days),
            views.tokens_per_day(report.days),
            views.ranked(f"Requests by {by}", groups, "requests"),
            views.ranked(f"Tokens by {by}", groups, "tokens"),
        ]
        return self.render(
            request,
            "usage.html",
            session,
            nav="usage",
            errors=errors,
            since=since,
            until=until,
            by=by,
            dimensions=usage.DIMENSIONS,
            report=report,
            groups=groups,
            charts=charts,
        )

    async def costs_page(self, rt: Runtime, request: Request, session: Session) -> Response:
        filters, errors, since, until = await self._range(request)
        await rt.ledger.flush()
        keys = await queries.list_keys(rt.engine)
        names = {k.id: k.name for k in keys}
        names.update({s.id: s.name for k in ("team", "user") for s in await rt.scopes.list_all(k)})
        report = await usage.daily(rt.engine, since=filters.since, until=filters.until)
        sections = []
        for by in ("model", "key", "team"):
            groups = await usage.breakdown(
                rt.engine, by, since=filters.since, until=filters.until, key_names=names
            )
            sections.append((by, views.ranked(f"Cost by {by}", groups, "cost"), groups))
        return self.render(
            request,
            "costs.html",
            session,
            nav="costs",
            errors=errors,
            since=since,
            until=until,
            report=report,
            daily_chart=views.cost_per_day(report.days),
            sections=sections,
        )

    async def static_file(self, request: Request) -> Response:
        return self.static.response(request.path_params["name"])

    async def not_found(self, rt: Runtime, request: Request, session: Session) -> Response:
        return self.render(
            request,
            "error.html",
            session,
            404,
            title="Not found",
            message="There is no console page at this address.",
        )

    def routes(self) -> list[BaseRoute]:
        return [
            Route(PREFIX, self.index, methods=["GET"]),
            Route(f"{PREFIX}/", self.index, methods=["GET"]),
            Route(f"{PREFIX}/login", self.login_form, methods=["GET"]),
            Route(f"{PREFIX}/login", self.login, methods=["POST"]),
            Route(f"{PREFIX}/logout", self.logout, methods=["POST"]),
            Route(f"{PREFIX}/static/{{name}}", self.static_file, methods=["GET"]),
            Route(
                f"{PREFIX}/requests", self.page(self.requests_page, "traces.read"), methods=["GET"]
            ),
            Route(
                f"{PREFIX}/requests/{{request_id}}",
                self.page(self.request_detail, "traces.read"),
                methods=["GET"],
            ),
            Route(f"{PREFIX}/find", self.page(self.find, "traces.read"), methods=["GET"]),
            Route(
                f"{PREFIX}/traces/{{trace_id}}",
                self.page(self.trace_detail, "traces.read"),
                methods=["GET"],
            ),
            Route(f"{PREFIX}/usage", self.page(self.usage_page, "usage.read"), methods=["GET"]),
            Route(f"{PREFIX}/costs", self.page(self.costs_page, "costs.read"), methods=["GET"]),
            *PromptPages(self).routes(),
            *EvalPages(self).routes(),
            *KeyPages(self).routes(),
            *AnnotatePages(self).routes(),
            *RolloutPages(self).routes(),
            *SessionPages(self).routes(),
            *ExportPages(self).routes(),
            *DashboardPages(self).routes(),
            *PlaygroundPages(self).routes(),
            *UserPages(self).routes(),
            *GuardPages(self).routes(),
            *RagPages(self).routes(),
            Route(f"{PREFIX}/{{rest:path}}", self.page(self.not_found), methods=["GET"]),
        ]


async def settle(rt: Runtime) -> None:
    """Write what the gateway has queued, so a request just made is already listed."""
    await rt.ledger.flush()
    await rt.telemetry.traces.flush()


def routes() -> list[BaseRoute]:
    """The console's routes, with a fresh session store: one per built app."""
    return Console().routes()
