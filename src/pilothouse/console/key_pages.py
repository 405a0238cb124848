"""Console pages for virtual keys and their budgets: list, create, update, rotate, revoke.

Every write calls the same :class:`KeyStore` methods as the admin API, so the
validation and the ``key.*`` audit rows are the API's. A new or rotated secret
is rendered once, in the POST's own response (never in a URL, a redirect or a
log); after that only its prefix is ever shown. Only an admin may mint, change,
rotate or revoke a key that carries an admin role: an operator could otherwise
rotate an admin's key and read its new secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pilothouse.console.auth import Session, check_session_csrf
from pilothouse.console.web import PREFIX, cross_site, read_form, redirect
from pilothouse.errors import InvalidRequestError, PilothouseError
from pilothouse.gateway.authz import ROLES, allows, may_manage_key
from pilothouse.gateway.runtime import Runtime
from pilothouse.limits.budget import period_key
from pilothouse.limits.key_usage import KeySpend, spend_by_key
from pilothouse.limits.keys import DEFAULT_ROTATION_GRACE_S, PERIODS, KeyRecord
from pilothouse.limits.money import pico_to_str

if TYPE_CHECKING:
    from pilothouse.console.handlers import Console

BASE = f"{PREFIX}/keys"


def _models(text: str) -> list[str] | None:
    """Comma-separated aliases; empty means every model."""
    aliases = [a.strip() for a in text.split(",") if a.strip()]
    return aliases or None


def _int(text: str, name: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidRequestError(f"`{name}` must be a whole number", param=name) from None


def spec_from_form(form: dict[str, str], *, creating: bool) -> dict[str, Any]:
    """The admin API's JSON body, built from the form's fields (blank: not set)."""
    spec: dict[str, Any] = {}
    if creating:
        spec["name"] = form.get("name", "")
        role = form.get("role", "").strip()
        if role:
            spec["role"] = role
    models = _models(form.get("models", ""))
    if models is not None or not creating:
        spec["models"] = models
    budget = form.get("budget_usd", "").strip()
    spec["budget_usd"] = budget or None
    spec["budget_period"] = form.get("budget_period", "total").strip() or "total"
    for field in ("rpm", "tpm"):
        spec[field] = _int(form.get(field, ""), field)
    if creating:
        spec = {k: v for k, v in spec.items() if v is not None}
    return spec


class KeyPages:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def _rows(self, rt: Runtime, include_revoked: bool) -> list[dict[str, Any]]:
        records = await rt.keys.list_all(include_revoked=include_revoked)
        await rt.ledger.flush()
        spend = await spend_by_key(rt.engine)
        return [await self._row(rt, r, spend.get(r.id)) for r in records]

    async def _row(self, rt: Runtime, record: KeyRecord, spend: KeySpend | None) -> dict[str, Any]:
        spend = spend or KeySpend()
        left = None
        if record.budget_pico is not None:
            spent = await rt.budgets.spent(record.id, period_key(record.budget_period))
            left = pico_to_str(max(0, record.budget_pico - spent))
        return {
            **record.public(),
            "spend_usd": pico_to_str(spend.in_period(record.budget_period)),
            "budget_left_usd": left,
            "last_used_at": spend.last_used_at,
        }

    async def list_page(
        self,
        rt: Runtime,
        request: Request,
        session: Session,
        *,
        status: int = 200,
        errors: list[str] | None = None,
        secret: dict[str, str] | None = None,
        notice: str = "",
    ) -> Response:
        show_revoked = request.query_params.get("revoked") == "1"
        role = session.principal.role
        return self.console.render(
            request, "keys.html", session, status, nav="keys",
            keys=await self._rows(rt, show_revoked), show_revoked=show_revoked,
            may_write=allows(role, "keys.write"),
            roles=ROLES if role == "admin" else (), periods=PERIODS,
            errors=errors or [], secret=secret, notice=notice,
        )  # fmt: skip

    async def list_get(self, rt: Runtime, request: Request, session: Session) -> Response:
        done = {"updated": "Key updated.", "revoked": "Key revoked: it no longer authenticates."}
        notice = done.get(request.query_params.get("done") or "", "")
        return await self.list_page(rt, request, session, notice=notice)

    async def _failed(
        self, rt: Runtime, request: Request, session: Session, exc: PilothouseError
    ) -> Response:
        return await self.list_page(rt, request, session, status=exc.status, errors=[exc.message])

    async def _form(self, request: Request, session: Session) -> dict[str, str] | None:
        form = await read_form(request)
        if cross_site(request) or not check_session_csrf(session, form.get("csrf_token")):
            return None
        return form

    async def create(self, rt: Runtime, request: Request, session: Session) -> Response:
        form = await self._form(request, session)
        if form is None:
            return self.console.forbidden(request, session)
        try:
            spec = spec_from_form(form, creating=True)
            if not may_manage_key(
                session.principal.role, target_role=None, new_role=spec.get("role")
            ):
                return self.console.forbidden(request, session)
            record, secret = await rt.keys.create(spec, actor=session.principal.name)
        except PilothouseError as exc:
            return await self._failed(rt, request, session, exc)
        shown = {"id": record.id, "name": record.name, "key": secret, "what": "created"}
        return await self.list_page(rt, request, session, status=201, secret=shown)

    async def _may_manage(self, rt: Runtime, session: Session, key_id: str) -> bool:
        """Admin-role keys are managed by admins only; a missing key is the store's 404."""
        if session.principal.role == "admin":
            return True  # no store read needed
        try:
            record = await rt.keys.get(key_id)
        except PilothouseError:
            return True
        return may_manage_key(session.principal.role, target_role=record.admin_role)

    async def update(self, rt: Runtime, request: Request, session: Session) -> Response:
        form = await self._form(request, session)
        if form is None:
            return self.console.forbidden(request, session)
        key_id = request.path_params["key_id"][:64]
        if not await self._may_manage(rt, session, key_id):
            return self.console.forbidden(request, session)
        try:
            patch = spec_from_form(form, creating=False)
            await rt.keys.update(key_id, patch, actor=session.principal.name)
            await rt.key_changed(key_id)
        except PilothouseError as exc:
            return await self._failed(rt, request, session, exc)
        return redirect(f"{BASE}?done=updated")

    async def rotate(self, rt: Runtime, request: Request, session: Session) -> Response:
        form = await self._form(request, session)
        if form is None:
            return self.console.forbidden(request, session)
        key_id = request.path_params["key_id"][:64]
        if not await self._may_manage(rt, session, key_id):
            return self.console.forbidden(request, session)
        try:
            grace = _int(form.get("grace_s", ""), "grace_s")
            record, secret = await rt.keys.rotate(
                key_id,
                grace_s=DEFAULT_ROTATION_GRACE_S if grace is None else grace,
                actor=session.principal.name,
            )
            await rt.key_changed(key_id)
        except PilothouseError as exc:
            return await self._failed(rt, request, session, exc)
        shown = {"id": record.id, "name": record.name, "key": secret, "what": "rotated"}
        return await self.list_page(rt, request, session, status=201, secret=shown)

    async def revoke(self, rt: Runtime, request: Request, session: Session) -> Response:
        form = await self._form(request, session)
        if form is None:
            return self.console.forbidden(request, session)
        key_id = request.path_params["key_id"][:64]
        if not await self._may_manage(rt, session, key_id):
            return self.console.forbidden(request, session)
        try:
            await rt.keys.revoke(key_id, actor=session.principal.name)
            await rt.revoke(key_id)
        except PilothouseError as exc:
            return await self._failed(rt, request, session, exc)
        return redirect(f"{BASE}?done=revoked")

    def routes(self) -> list[BaseRoute]:
        page = self.console.page
        one = BASE + "/{key_id}"
        return [
            Route(BASE, page(self.list_get, "keys.read"), methods=["GET"]),
            Route(BASE, page(self.create, "keys.write"), methods=["POST"]),
            Route(one + "/update", page(self.update, "keys.write"), methods=["POST"]),
            Route(one + "/rotate", page(self.rotate, "keys.write"), methods=["POST"]),
            Route(one + "/revoke", page(self.revoke, "keys.write"), methods=["POST"]),
        ]
