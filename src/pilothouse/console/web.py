"""HTTP plumbing for the console: templates, security headers, cookies, forms, admin sign-in."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from pilothouse import audit
from pilothouse.console.auth import LoginCsrf, Principal, Session
from pilothouse.console.formatting import FILTERS
from pilothouse.errors import NotFoundError
from pilothouse.gateway.routes_admin import admin_principal
from pilothouse.gateway.runtime import Runtime

HERE = Path(__file__).parent
PREFIX = "/console"
SESSION_COOKIE = "pilothouse_console"
LOGIN_COOKIE = "pilothouse_console_login"
MAX_FORM_BYTES = 16 * 1024
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def template_env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


class StaticFiles:
    """The console's own CSS and JS, read once, served with a content hash for caching."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        for path in sorted((HERE / "static").iterdir()):
            if path.suffix in STATIC_TYPES:
                self.files[path.name] = (path.read_bytes(), STATIC_TYPES[path.suffix])
        digest = hashlib.sha256(b"".join(body for body, _ in self.files.values()))
        self.version = digest.hexdigest()[:12]

    def response(self, name: str) -> Response:
        found = self.files.get(name)
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        body, media_type = found
        headers = {**SECURITY_HEADERS, "cache-control": "public, max-age=86400"}
        return Response(body, media_type=media_type, headers=headers)


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def html(body: str, status: int = 200) -> Response:
    return secure(HTMLResponse(body, status_code=status))


def redirect(location: str) -> Response:
    return secure(RedirectResponse(location, status_code=303))


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        name, path=PREFIX, httponly=True, samesite="strict", secure=is_https(request)
    )


def cross_site(request: Request) -> bool:
    """A browser telling us the POST came from another origin (belt to the CSRF token's braces)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False
    # Hosts, not schemes: behind a TLS-terminating proxy the app may see http.
    return origin == "null" or urlsplit(origin).netloc != request.headers.get("host", "")


async def read_form(request: Request) -> dict[str, str]:
    """A small urlencoded form (first value per field); oversized bodies read as empty."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return {}
        chunks.append(chunk)
    text = b"".join(chunks).decode("utf-8", errors="replace")
    parsed = parse_qs(text, keep_blank_values=True, max_num_fields=20)
    return {k: v[0] for k, v in parsed.items() if v}


def safe_next(target: str | None) -> str:
    """Only same-console paths: never an open redirect to another host."""
    if not target or not target.startswith(PREFIX + "/") or target.startswith("//"):
        return PREFIX + "/requests"
    if "\\" in target or "\n" in target or "\r" in target:
        return PREFIX + "/requests"
    return target


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{PREFIX}/login?{urlencode({'next': target})}"


def client_id(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def sign_in(rt: Runtime, csrf: LoginCsrf, secret: str, source: str) -> Principal:
    """Check a submitted key exactly as the admin API does (and throttles); who it is."""
    who = await admin_principal(rt, secret.strip() or None, source)
    if who.key_id is None:
        admin = rt.settings.server.admin_key
        assert admin is not None  # only the config admin key has no key id
        principal = Principal(
            "admin_key", "admin key", fingerprint=csrf.fingerprint(admin.get()), name=who.name
        )
    else:
        principal = Principal(
            "virtual_key",
            f"{who.name} ({who.key_id})",
            key_id=who.key_id,
            role=who.role,
            name=who.name,
        )
    await audit.append(
        rt.engine,
        actor=who.name,
        action="console.login",
        target=who.key_id or who.name,
        details={"role": who.role},
    )
    return principal


async def still_valid(rt: Runtime, csrf: LoginCsrf, session: Session) -> bool:
    """A rotated admin key or a revoked/demoted admin key ends its sessions."""
    principal = session.principal
    if principal.kind == "admin_key":
        admin = rt.settings.server.admin_key
        return admin is not None and principal.fingerprint == csrf.fingerprint(admin.get())
    if principal.key_id is None:
        return False
    try:
        record = await rt.keys.get(principal.key_id)
    except NotFoundError:
        return False
    return not record.revoked and record.admin_role == session.principal.role


def page_context(request: Request, session: Session | None, **extra: Any) -> dict[str, Any]:
    return {
        "prefix": PREFIX,
        "path": request.url.path,
        "session": session,
        "csrf": session.csrf if session else "",
        **extra,
    }
