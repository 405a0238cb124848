"""Sessions, CSRF tokens and sign-in throttling (clock injected, no sleeps)."""

from __future__ import annotations

from pilothouse.console.auth import (
    LoginCsrf,
    Principal,
    SessionStore,
    check_session_csrf,
)
from pilothouse.console.web import safe_next

ADMIN = Principal("admin_key", "admin key", fingerprint="f")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_is_found_by_its_token_and_the_token_is_not_stored() -> None:
    store = SessionStore(Clock())
    token, session = store.create(ADMIN)
    assert store.get(token) is session
    assert token not in repr(store._sessions)  # only its digest is kept
    assert store.get(token + "x") is None
    assert store.get(None) is None and store.get("") is None


def test_sessions_expire_when_idle_and_after_the_absolute_limit() -> None:
    clock = Clock()
    store = SessionStore(clock, idle_s=60, absolute_s=300)
    token, _ = store.create(ADMIN)
    clock.now += 59
    assert store.get(token) is not None  # activity refreshes the idle timer
    clock.now += 59
    assert store.get(token) is not None
    clock.now += 61
    assert store.get(token) is None
    token, _ = store.create(ADMIN)
    for _ in range(6):
        clock.now += 55
        alive = store.get(token)
    assert alive is None  # 330 s after sign-in, however active


def test_ending_a_session_signs_it_out_and_old_sessions_make_room() -> None:
    store = SessionStore(Clock(), max_sessions=2)
    first, _ = store.create(ADMIN)
    second, _ = store.create(ADMIN)
    store.end(second)
    assert store.get(second) is None
    store.create(ADMIN)
    store.create(ADMIN)
    assert len(store) == 2
    assert store.get(first) is None  # the oldest went first


def test_each_session_has_its_own_csrf_token() -> None:
    store = SessionStore(Clock())
    _, a = store.create(ADMIN)
    _, b = store.create(ADMIN)
    assert a.csrf != b.csrf and len(a.csrf) >= 32
    assert check_session_csrf(a, a.csrf)
    assert not check_session_csrf(a, b.csrf)
    assert not check_session_csrf(a, None)
    assert not check_session_csrf(a, "")


def test_login_csrf_pairs_a_cookie_nonce_with_a_form_token() -> None:
    csrf = LoginCsrf()
    nonce, token = csrf.issue()
    assert csrf.check(nonce, token)
    _, other_token = csrf.issue()
    assert not csrf.check(nonce, other_token)
    assert not csrf.check(None, token)
    assert not csrf.check(nonce, None)
    assert not csrf.check(nonce, token[:-1] + ("0" if token[-1] != "0" else "1"))
    assert not LoginCsrf().check(nonce, token)  # another process's secret


def test_the_admin_key_fingerprint_changes_with_the_key_and_hides_it() -> None:
    csrf = LoginCsrf()
    fp = csrf.fingerprint("secret-admin-key")
    assert fp == csrf.fingerprint("secret-admin-key")
    assert fp != csrf.fingerprint("rotated-admin-key")
    assert "secret-admin-key" not in fp


def test_next_only_ever_points_inside_the_console() -> None:
    assert safe_next("/console/usage?since=7d") == "/console/usage?since=7d"
    for hostile in (
        "https://evil.example/",
        "//evil.example/console/",
        "/consolex/evil",
        "/admin/keys",
        "/console/\\evil",
        None,
        "",
    ):
        assert safe_next(hostile) == "/console/requests"


async def test_rotating_or_removing_the_admin_key_ends_its_sessions() -> None:
    from types import SimpleNamespace

    from pilothouse.config.schema import Secret
    from pilothouse.console.web import still_valid

    csrf = LoginCsrf()
    store = SessionStore(Clock())
    _, session = store.create(
        Principal("admin_key", "admin key", fingerprint=csrf.fingerprint("k1"))
    )

    def runtime(key: str | None) -> object:
        server = SimpleNamespace(admin_key=Secret(key) if key else None)
        return SimpleNamespace(settings=SimpleNamespace(server=server))

    assert await still_valid(runtime("k1"), csrf, session)  # type: ignore[arg-type]
    assert not await still_valid(runtime("k2"), csrf, session)  # type: ignore[arg-type]
    assert not await still_valid(runtime(None), csrf, session)  # type: ignore[arg-type]
