"""The console over HTTP, in process: sign-in, sessions, CSRF, escaping, empty states."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from pilothouse.config.load import parse_settings
from pilothouse.gateway.app import build_app
from pilothouse.gateway.runtime import Runtime
from pilothouse.store.db import create_engine
from tests.support.gateway import ADMIN_KEY, base_config
from tests.unit.console.sample import TRACED, XSS, XSS_REQUEST, XSS_TRACE_ID, write_sample

ORIGIN = "http://testserver"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/console.db"


@pytest.fixture
def client(store_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = parse_settings(base_config(store_url, tmp_path), source="<test>")
    with TestClient(build_app(settings), base_url=ORIGIN, follow_redirects=False) as c:
        yield c


def fill(store_url: str) -> None:
    async def run() -> None:
        engine = create_engine(store_url)
        await write_sample(engine)
        await engine.dispose()

    asyncio.run(run())


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def sign_in(client: TestClient, key: str = ADMIN_KEY) -> httpx.Response:
    form = client.get("/console/login")
    token = csrf_of(form.text)
    return client.post(
        "/console/login",
        data={"csrf_token": token, "admin_key": key, "next": "/console/usage"},
        headers={"origin": ORIGIN},
    )


def admin_api(client: TestClient) -> dict[str, str]:
    return {"authorization": f"Bearer {ADMIN_KEY}"}


def test_pages_need_a_session_and_send_you_back_after_sign_in(client: TestClient) -> None:
    r = client.get("/console/costs?since=7d")
    assert r.status_code == 303
    assert r.headers["location"] == "/console/login?next=%2Fconsole%2Fcosts%3Fsince%3D7d"
    form = client.get(r.headers["location"])
    assert 'name="next" value="/console/costs?since=7d"' in form.text


def test_the_right_key_opens_a_session_cookie_that_does_not_hold_the_key(
    client: TestClient,
) -> None:
    r = sign_in(client)
    assert r.status_code == 303 and r.headers["location"] == "/console/usage"
    cookie = next(
        c for c in r.headers.get_list("set-cookie") if c.startswith("pilothouse_console=")
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert ADMIN_KEY not in cookie and ADMIN_KEY not in r.text
    page = client.get("/console/requests")
    assert page.status_code == 200 and "admin key" in page.text
    for header in ("content-security-policy", "x-frame-options", "x-content-type-options"):
        assert header in page.headers
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def test_a_wrong_key_is_refused_with_a_message(client: TestClient) -> None:
    r = sign_in(client, "not-the-key")
    assert r.status_code == 401
    assert "That is not a valid admin key." in r.text
    assert client.get("/console/requests").status_code == 303


def test_sign_in_without_its_csrf_token_or_from_another_site_is_refused(client: TestClient) -> None:
    token = csrf_of(client.get("/console/login").text)
    no_token = client.post("/console/login", data={"admin_key": ADMIN_KEY})
    assert no_token.status_code == 403
    other_site = client.post(
        "/console/login",
        data={"csrf_token": token, "admin_key": ADMIN_KEY},
        headers={"origin": "https://evil.example"},
    )
    assert other_site.status_code == 403
    client.cookies.clear()  # a forged form never has the login cookie
    assert (
        client.post(
            "/console/login", data={"csrf_token": token, "admin_key": ADMIN_KEY}
        ).status_code
        == 403
    )
    assert client.get("/console/requests").status_code == 303


def test_logout_needs_the_session_token_and_then_ends_the_session(client: TestClient) -> None:
    sign_in(client)
    page = client.get("/console/requests")
    assert client.post("/console/logout").status_code == 403
    assert client.post("/console/logout", data={"csrf_token": "guess"}).status_code == 403
    cross = client.post(
        "/console/logout",
        data={"csrf_token": csrf_of(page.text)},
        headers={"sec-fetch-site": "cross-site"},
    )
    assert cross.status_code == 403
    assert client.get("/console/requests").status_code == 200  # still signed in
    out = client.post("/console/logout", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/console/login?signed_out=1"
    assert client.get("/console/requests").status_code == 303
    assert "You have signed out." in client.get(out.headers["location"]).text


def test_signing_in_again_replaces_the_session_it_came_with(client: TestClient) -> None:
    form = client.get("/console/login")
    nonce = client.cookies.get("pilothouse_console_login")
    data = {"csrf_token": csrf_of(form.text), "admin_key": ADMIN_KEY}
    assert client.post("/console/login", data=data).status_code == 303
    old = client.cookies.get("pilothouse_console")
    client.cookies.set("pilothouse_console_login", nonce or "", path="/console")
    assert client.post("/console/login", data=data).status_code == 303
    new = client.cookies.get("pilothouse_console")
    assert new and new != old
    client.cookies.clear()
    client.cookies.set("pilothouse_console", old or "", path="/console")
    assert client.get("/console/requests").status_code == 303  # the old token is dead


def test_virtual_admin_keys_sign_in_and_their_sessions_end_on_revocation(
    client: TestClient,
) -> None:
    made = client.post(
        "/admin/keys", json={"name": "ops", "scopes": ["admin"]}, headers=admin_api(client)
    )
    assert made.status_code == 201, made.text
    plain = client.post("/admin/keys", json={"name": "app"}, headers=admin_api(client)).json()[
        "key"
    ]
    refused = sign_in(client, plain)
    assert refused.status_code == 403 and "does not have the admin scope" in refused.text
    assert sign_in(client, made.json()["key"]).status_code == 303
    assert "ops (" in client.get("/console/requests").text
    client.delete(f"/admin/keys/{made.json()['id']}", headers=admin_api(client))
    assert client.get("/console/requests").status_code == 303


def test_repeated_wrong_keys_are_throttled_but_the_right_key_still_signs_in(
    client: TestClient,
) -> None:
    for _ in range(10):
        assert sign_in(client, "wrong").status_code == 401
    r = sign_in(client, "wrong")
    assert r.status_code == 429 and "Too many failed sign-ins" in r.text
    assert sign_in(client, ADMIN_KEY).status_code == 303  # never locked out by a guesser


def test_every_page_has_an_empty_state(client: TestClient) -> None:
    sign_in(client)
    log = client.get("/console/requests")
    assert log.status_code == 200 and "No requests yet" in log.text
    assert "No requests match" in client.get("/console/requests?user=zed").text
    assert "No usage in this range" in client.get("/console/usage").text
    costs = client.get("/console/costs")
    assert "No spend in this range" in costs.text and "$0.00" in costs.text
    missing = client.get("/console/requests/req_nope")
    assert missing.status_code == 404 and "There is no request req_nope" in missing.text
    assert client.get("/console/elsewhere").status_code == 404


def test_user_content_is_text_on_every_page(client: TestClient, store_url: str) -> None:
    fill(store_url)
    sign_in(client)
    pages = [
        "/console/requests",
        f"/console/requests?user={httpx.QueryParams({'u': '<b>mallory</b>'})['u']}",
        f"/console/requests/{XSS_REQUEST}",
        f"/console/traces/{XSS_TRACE_ID}",
        "/console/usage?by=feature",
        "/console/usage?by=team",
        "/console/costs",
        "/console/requests?model=" + httpx.QueryParams({"m": XSS}).get("m", ""),
    ]
    for path in pages:
        r = client.get(path)
        assert r.status_code == 200, path
        assert "<script>window.__xss" not in r.text, path
        assert (
            "<img src=x" not in r.text and "<b>mallory" not in r.text and "<i>beta" not in r.text
        ), path
    detail = client.get(f"/console/requests/{XSS_REQUEST}").text
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in detail
    assert "&lt;b&gt;mallory&lt;/b&gt;" in detail


def test_a_request_or_trace_id_opens_its_page(client: TestClient, store_url: str) -> None:
    fill(store_url)
    sign_in(client)
    by_request = client.get(f"/console/find?id=%20{TRACED}%20")
    assert by_request.status_code == 303
    assert by_request.headers["location"] == f"/console/requests/{TRACED}"
    by_trace = client.get(f"/console/find?id={XSS_TRACE_ID}")
    assert by_trace.headers["location"] == f"/console/traces/{XSS_TRACE_ID}"
    assert XSS_REQUEST in client.get(by_trace.headers["location"]).text
    missing = client.get("/console/find?id=<nope>")
    assert missing.status_code == 404 and "&lt;nope&gt;" in missing.text
    assert client.get("/console/find?id=").headers["location"] == "/console/requests"


def test_bad_filters_are_explained_not_crashed_on(client: TestClient, store_url: str) -> None:
    fill(store_url)
    sign_in(client)
    r = client.get("/console/requests?since=last+tuesday&status=teapot&cursor=garbage")
    assert r.status_code == 200
    assert "“since” must be" in r.text and "“status” must be" in r.text
    assert "That page link is no longer valid" in r.text
    assert TRACED in r.text  # still shows the newest requests
    assert "“by” must be one of" in client.get("/console/usage?by=colour").text


def test_static_assets_are_served_and_nothing_else(client: TestClient) -> None:
    css = client.get("/console/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/console/static/handlers.py").status_code == 404  # not an asset
    assert client.get("/console/static/missing.js").status_code == 404


def test_the_runtime_is_reused_not_rebuilt(client: TestClient) -> None:
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    assert isinstance(rt, Runtime)


def test_a_failing_page_says_so_without_details(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pilothouse.console import queries

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database password is hunter2")

    sign_in(client)
    monkeypatch.setattr(queries, "request_log", broken)
    r = client.get("/console/requests")
    assert r.status_code == 500
    assert "Something went wrong" in r.text and "hunter2" not in r.text
    assert "content-security-policy" in r.headers


def test_console_roles_limit_pages_and_viewers_see_no_content(
    client: TestClient, store_url: str
) -> None:
    fill(store_url)

    def key(name: str, role: str) -> str:
        made = client.post(
            "/admin/keys", json={"name": name, "role": role}, headers=admin_api(client)
        )
        assert made.status_code == 201, made.text
        return str(made.json()["key"])

    finance, viewer = key("fin", "finance"), key("vera", "viewer")
    assert sign_in(client, finance).status_code == 303
    assert client.get("/console/usage").status_code == 200
    assert client.get("/console/requests").status_code == 403
    client.cookies.clear()
    assert sign_in(client, viewer).status_code == 303
    full_by_admin = "Summarise this"
    page = client.get(f"/console/requests/{XSS_REQUEST}")
    assert page.status_code == 200 and full_by_admin not in page.text
    logins = client.get(
        "/admin/audit", params={"action": "console.login"}, headers=admin_api(client)
    ).json()["data"]
    assert [r["actor"] for r in logins] == ["fin", "vera"]
