"""Admin principals and roles, enforced on every admin route of a real gateway."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.routing import Route

from pilothouse.config.load import parse_settings
from pilothouse.gateway.app import build_app
from pilothouse.gateway.authz import ROLES
from tests.support.gateway import base_config, running_gateway

pytestmark = pytest.mark.integration

# What the issue promises each role, written out (not derived from the code under test).
EXPECTED = {
    ("GET", "/admin/keys"): {"admin", "operator", "viewer"},
    ("POST", "/admin/keys"): {"admin", "operator"},
    ("DELETE", "/admin/keys/{key_id}"): {"admin", "operator"},
    ("GET", "/admin/usage"): {"admin", "viewer", "finance"},
    ("GET", "/admin/reports/costs"): {"admin", "viewer", "finance"},
    ("POST", "/admin/reload"): {"admin", "operator"},
    ("GET", "/admin/traces"): {"admin", "viewer"},
    ("GET", "/admin/traces/{ident}"): {"admin", "viewer"},
    ("GET", "/admin/slo"): {"admin", "viewer"},
    ("GET", "/admin/audit"): {"admin", "viewer"},
    ("POST", "/admin/degrade"): {"admin", "operator"},
    ("GET", "/admin/degrade"): {"admin", "operator", "viewer"},
}


def admin_routes(tmp_path: Path) -> list[tuple[str, str]]:
    app = build_app(parse_settings(base_config("sqlite:///" + str(tmp_path / "x.db"), tmp_path)))
    out = []
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith("/admin"):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                out.append((method, route.path))
    return out


def test_every_admin_route_checks_the_role(store_url: str, tmp_path: Path) -> None:
    routes = admin_routes(tmp_path)
    assert set(EXPECTED) <= set(routes)
    with running_gateway(base_config(store_url, tmp_path)) as gw:
        keys = {role: gw.create_key(name=f"p-{role}", role=role) for role in ROLES}
        plain = gw.create_key(name="app")
        for method, path in routes:
            url = gw.url + path.replace("{", "").replace("}", "")
            for role, secret in keys.items():
                resp = httpx.request(
                    method, url, headers={"Authorization": f"Bearer {secret}"}, json={}
                )
                assert resp.status_code not in (401, 500), (method, path, role, resp.text)
                refused = resp.status_code == 403
                if (method, path) in EXPECTED:
                    assert refused == (role not in EXPECTED[(method, path)]), (method, path, role)
                if role == "admin":
                    assert not refused, (method, path)
                if refused:
                    assert resp.json()["error"]["code"] == "forbidden_for_role"
            inference_only = httpx.request(
                method, url, headers={"Authorization": f"Bearer {plain}"}, json={}
            )
            assert inference_only.status_code == 403, (method, path)
            assert httpx.request(method, url, json={}).status_code == 401, (method, path)


def test_viewer_reads_traces_without_content(tmp_path: Path) -> None:
    with running_gateway(base_config("sqlite:///" + str(tmp_path / "t.db"), tmp_path)) as gw:
        app_key = gw.create_key(name="app")
        viewer = gw.create_key(name="vera", role="viewer")
        done = httpx.post(
            gw.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {app_key}"},
            json={"model": "chat", "messages": [{"role": "user", "content": "zebra crossing"}]},
        )
        assert done.status_code == 200
        request_id = done.headers["x-request-id"]
        with gw.admin() as admin:
            full = admin.get(f"/admin/traces/{request_id}")
            assert "zebra crossing" in full.text
            admin.headers["Authorization"] = f"Bearer {viewer}"
            seen = admin.get(f"/admin/traces/{request_id}")
        assert seen.status_code == 200 and seen.json()["request_id"] == request_id
        assert "zebra" not in seen.text
        assert seen.json()["input_tokens"] == full.json()["input_tokens"]


def test_role_is_validated_and_shown(tmp_path: Path) -> None:
    config = base_config("sqlite:///" + str(tmp_path / "r.db"), tmp_path)
    with running_gateway(config) as gw, gw.admin() as admin:
        bad = admin.post("/admin/keys", json={"name": "x", "role": "root"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "role"
        reserved = admin.post("/admin/keys", json={"name": "bootstrap", "role": "admin"})
        assert reserved.status_code == 400
        made = admin.post("/admin/keys", json={"name": "fin", "role": "finance"})
        assert made.status_code == 201 and made.json()["role"] == "finance"
        listed = admin.get("/admin/keys").json()["data"]
        assert {k["name"]: k["role"] for k in listed}["fin"] == "finance"


def test_an_operator_cannot_take_over_an_admin_key(tmp_path: Path) -> None:
    """keys.write is an operator's; rotating an admin's key would hand over its secret."""
    config = base_config("sqlite:///" + str(tmp_path / "r.db"), tmp_path)
    with running_gateway(config) as gw, gw.admin() as admin:
        boss = admin.post("/admin/keys", json={"name": "boss", "role": "admin"}).json()
        plain = admin.post("/admin/keys", json={"name": "app"}).json()
        operator = gw.create_key(name="olga", role="operator")
        admin.headers["Authorization"] = f"Bearer {operator}"
        refused = [
            admin.post(f"/admin/keys/{boss['id']}/rotate", json={}),
            admin.patch(f"/admin/keys/{boss['id']}", json={"rpm": 10}),
            admin.delete(f"/admin/keys/{boss['id']}"),
            admin.post("/admin/keys", json={"name": "me-too", "role": "admin"}),
            admin.patch(f"/admin/keys/{plain['id']}", json={"role": "operator"}),
        ]
        rotated = admin.post(f"/admin/keys/{plain['id']}/rotate", json={})
    assert [r.status_code for r in refused] == [403] * 5, [r.text for r in refused]
    assert all(r.json()["error"]["code"] == "forbidden_for_role" for r in refused)
    assert all("key" not in r.json() for r in refused)
    assert rotated.status_code == 201 and rotated.json()["key"]
