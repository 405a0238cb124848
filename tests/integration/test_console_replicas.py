"""Console sessions on any replica: sign in through one gateway, browse through another.

Two gateway processes' worth of apps (two servers, two runtimes) share a store,
and Redis in the second case; nothing is sticky. A login form served by one is
posted to the other, the session works on both, and signing out on one ends it
everywhere.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import ADMIN_KEY, base_config, running_gateway

pytestmark = pytest.mark.integration


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


@contextlib.contextmanager
def two_replicas(tmp_path: Path, store_url: str, **extra: Any) -> Iterator[tuple[Any, Any]]:
    with (
        running_gateway(base_config(store_url, tmp_path / "a", **extra)) as a,
        running_gateway(base_config(store_url, tmp_path / "b", **extra)) as b,
    ):
        yield a, b


def post_form(gw: Any, path: str, data: dict[str, str], cookies: httpx.Cookies) -> httpx.Response:
    return httpx.post(
        gw.url + path, data=data, cookies=cookies, headers={"origin": gw.url}, timeout=30
    )


def roam(a: Any, b: Any) -> None:
    jar = httpx.Cookies()
    form = httpx.get(a.url + "/console/login", timeout=30)
    jar.update(form.cookies)
    signed_in = post_form(
        b,
        "/console/login",
        {"csrf_token": csrf_of(form.text), "admin_key": ADMIN_KEY, "next": "/console/usage"},
        jar,
    )
    assert signed_in.status_code == 303, signed_in.text  # the form of A is good on B
    jar.update(signed_in.cookies)
    for gw in (a, b):
        page = httpx.get(gw.url + "/console/usage", cookies=jar, timeout=30)
        assert page.status_code == 200, page.text
        assert "Sign in" not in page.text
    out = post_form(a, "/console/logout", {"csrf_token": csrf_of(page.text)}, jar)
    assert out.status_code == 303
    after = httpx.get(b.url + "/console/usage", cookies=jar, timeout=30)
    assert after.status_code == 303 and "/console/login" in after.headers["location"]


def test_sessions_roam_across_replicas_on_a_shared_store(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with two_replicas(tmp_path, f"sqlite:///{tmp_path}/shared.db") as (a, b):
        roam(a, b)


def test_sessions_roam_across_replicas_on_postgres_and_redis(
    tmp_path: Path, postgres_url: str, redis_url: str, redis_prefix: str
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    redis = {"url": redis_url, "prefix": redis_prefix}
    with two_replicas(tmp_path, postgres_url, redis=redis) as (a, b):
        roam(a, b)


def test_a_session_survives_a_restart(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path}/shared.db"
    config = base_config(store_url, tmp_path)
    jar = httpx.Cookies()
    with running_gateway(config) as gw:
        form = httpx.get(gw.url + "/console/login", timeout=30)
        jar.update(form.cookies)
        done = post_form(
            gw, "/console/login", {"csrf_token": csrf_of(form.text), "admin_key": ADMIN_KEY}, jar
        )
        jar.update(done.cookies)
    with running_gateway(config) as gw:
        page = httpx.get(gw.url + "/console/usage", cookies=jar, timeout=30)
    assert page.status_code == 200
