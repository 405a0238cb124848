"""Console pages for the prompt registry: list, versions, diff, label history, card, approve.

Reads go through :class:`PromptRegistry` (the API's own reader); the two forms
(approve, promote) call the same functions the admin API does, so the policy
checks, the four-eyes rule and the audit rows are the API's, not a copy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pilothouse.console.auth import Session, check_session_csrf
from pilothouse.console.prompt_views import bundle_text, changed, side_by_side
from pilothouse.console.web import PREFIX, cross_site, read_form, redirect
from pilothouse.errors import GateNotMetError, NotFoundError, PilothouseError
from pilothouse.gateway.authz import allows
from pilothouse.gateway.runtime import Runtime
from pilothouse.releases import gates
from pilothouse.releases.promote import promote
from pilothouse.releases.versions import Version

if TYPE_CHECKING:
    from pilothouse.console.handlers import Console

BASE = f"{PREFIX}/prompts"


def _q(value: str) -> str:
    return quote(value, safe="")


class PromptPages:
    def __init__(self, console: Console) -> None:
        self.console = console

    def _missing(self, request: Request, session: Session, what: str) -> Response:
        return self.console.render(
            request, "error.html", session, 404, nav="prompts", title="Not found", message=what
        )

    async def list_page(self, rt: Runtime, request: Request, session: Session) -> Response:
        query = (request.query_params.get("q") or "").strip()[:200]
        prompts = await rt.prompts.list_prompts()
        shown = [p for p in prompts if query.lower() in p["name"]] if query else prompts
        return self.console.render(
            request, "prompts.html", session, nav="prompts", prompts=shown, q=query,
            total=len(prompts),
        )  # fmt: skip

    async def prompt_page(self, rt: Runtime, request: Request, session: Session) -> Response:
        name = request.path_params["name"][:200]
        try:
            info = await rt.prompts.describe(name)
        except NotFoundError as exc:
            return self._missing(request, session, exc.message)
        numbers = [v["version"] for v in info["versions"]]
        return self.console.render(
            request, "prompt.html", session, nav="prompts", info=info,
            diff_a=numbers[-2] if len(numbers) > 1 else numbers[-1], diff_b=numbers[-1],
            policies=rt.settings.releases.labels,
        )  # fmt: skip

    async def diff_page(self, rt: Runtime, request: Request, session: Session) -> Response:
        name = request.path_params["name"][:200]
        refs = [(request.query_params.get(k) or "").strip()[:64] for k in ("a", "b")]
        try:
            info = await rt.prompts.describe(name)
            left, right = [(await rt.prompts.resolve(name, ref))[0] for ref in refs]
        except NotFoundError as exc:
            return self._missing(request, session, exc.message)
        rows = side_by_side(bundle_text(left.content), bundle_text(right.content))
        return self.console.render(
            request, "prompt_diff.html", session, nav="prompts", info=info, left=left,
            right=right, rows=rows, changed=changed(rows), refs=refs,
        )  # fmt: skip

    async def label_page(self, rt: Runtime, request: Request, session: Session) -> Response:
        name, label = request.path_params["name"][:200], request.path_params["label"][:64]
        history = await rt.prompts.history(name, label)
        if not history:
            return self._missing(request, session, f"Prompt {name!r} has no label {label!r}.")
        current = await rt.prompts.label_version(name, label)
        return self.console.render(
            request, "prompt_label.html", session, nav="prompts", prompt_name=name, label=label,
            history=list(reversed(history)), current=current,
            policy=rt.settings.releases.labels.get(label),
        )  # fmt: skip

    async def version_page(
        self,
        rt: Runtime,
        request: Request,
        session: Session,
        *,
        status: int = 200,
        errors: list[str] | None = None,
        notice: str = "",
    ) -> Response:
        name, ref = request.path_params["name"][:200], request.path_params["version"][:64]
        try:
            version, _ = await rt.prompts.resolve(name, ref)
        except NotFoundError as exc:
            return self._missing(request, session, exc.message)
        labels = await self._label_status(rt, version, session)
        return self.console.render(
            request, "prompt_version.html", session, status, nav="prompts", v=version,
            text=bundle_text(version.content),
            evidence=await rt.prompts.evidence(name, version.version), labels=labels,
            approvable=[s["label"] for s in labels if "approval" in s["requires"]],
            may_approve=allows(session.principal.role, "prompts.approve"),
            may_promote=allows(session.principal.role, "labels.write"),
            errors=errors or [], notice=notice,
        )  # fmt: skip

    async def _label_status(
        self, rt: Runtime, version: Version, session: Session
    ) -> list[dict[str, Any]]:
        """Per configured label: who holds it, approvals of this version, what is missing."""
        out = []
        for label, policy in sorted(rt.settings.releases.labels.items()):
            missing, _evidence = await gates.check(
                rt.prompts, policy, version, label, promoter=session.principal.name
            )
            out.append(
                {
                    "label": label,
                    "requires": list(policy.requires),
                    "holder": await rt.prompts.label_version(version.name, label),
                    "approvals": await rt.prompts.approvals(version.name, version.version, label),
                    "missing": missing,
                }
            )
        return out

    async def _form(self, request: Request, session: Session) -> dict[str, str] | None:
        form = await read_form(request)
        if cross_site(request) or not check_session_csrf(session, form.get("csrf_token")):
            return None
        return form

    async def approve(self, rt: Runtime, request: Request, session: Session) -> Response:
        form = await self._form(request, session)
        if form is None:
            return self.console.forbidden(request, session)
        name, ref = request.path_params["name"][:200], request.path_params["version"][:64]
        label = form.get("label", "").strip()
        try:
            version, _ = await rt.prompts.resolve(name, ref)
            await rt.prompts.approve(
                name, version.version, label, actor=session.principal.name,
                reason=form.get("reason", "").strip() or None,
            )  # fmt: skip
        except PilothouseError as exc:
            return await self.version_page(
                rt, request, session, status=exc.status, errors=[exc.message]
            )
        return redirect(f"{BASE}/{_q(name)}/versions/{version.version}?approved={_q(label)}")

    async def promote(self, rt: Runtime, request: Request, session: Session) -> Response:
        form = await self._form(request, session)
        if form is None:
            return self.console.forbidden(request, session)
        name, ref = request.path_params["name"][:200], request.path_params["version"][:64]
        label = form.get("label", "").strip()
        try:
            version, _ = await rt.prompts.resolve(name, ref)
            await promote(
                rt.prompts, rt.settings.releases, name, label, version.version,
                actor=session.principal.name, reason=form.get("reason", "").strip() or None,
            )  # fmt: skip
            await rt.label_moved(name, label)
        except GateNotMetError as exc:
            errors = [f"{label} was not moved: its policy is not met.", *exc.missing]
            return await self.version_page(rt, request, session, status=409, errors=errors)
        except PilothouseError as exc:
            return await self.version_page(
                rt, request, session, status=exc.status, errors=[exc.message]
            )
        return redirect(f"{BASE}/{_q(name)}/labels/{_q(label)}")

    async def version_get(self, rt: Runtime, request: Request, session: Session) -> Response:
        approved = (request.query_params.get("approved") or "")[:64]
        notice = f"Your approval for {approved} is recorded." if approved else ""
        return await self.version_page(rt, request, session, notice=notice)

    def routes(self) -> list[BaseRoute]:
        page = self.console.page
        v = BASE + "/{name}/versions/{version}"
        return [
            Route(BASE, page(self.list_page, "prompts.read"), methods=["GET"]),
            Route(BASE + "/{name}", page(self.prompt_page, "prompts.read"), methods=["GET"]),
            Route(BASE + "/{name}/diff", page(self.diff_page, "prompts.read"), methods=["GET"]),
            Route(
                BASE + "/{name}/labels/{label}",
                page(self.label_page, "prompts.read"),
                methods=["GET"],
            ),
            Route(v, page(self.version_get, "prompts.read"), methods=["GET"]),
            Route(v + "/approve", page(self.approve, "prompts.approve"), methods=["POST"]),
            Route(v + "/promote", page(self.promote, "labels.write"), methods=["POST"]),
        ]
