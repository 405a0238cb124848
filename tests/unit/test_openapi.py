"""/openapi.json documents exactly the routes the app serves.

A failure here after adding a route means: add its ``Operation`` to
``src/pilothouse/gateway/openapi_ops.py`` (request/response schemas and error
statuses), or remove the stale entry for a route that is gone.
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
from starlette.testclient import TestClient

from pilothouse.config.load import parse_settings
from pilothouse.gateway.app import build_app
from pilothouse.gateway.openapi import app_operations, openapi_document
from pilothouse.gateway.openapi_ops import all_operations
from tests.support.gateway import ADMIN_KEY, base_config


@pytest.fixture
def app(tmp_path: Path):  # type: ignore[no-untyped-def]
    return build_app(parse_settings(base_config(f"sqlite:///{tmp_path}/p.db", tmp_path)))


def documented() -> set[tuple[str, str]]:
    doc = openapi_document(all_operations())
    return {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops}


def test_every_route_is_documented(app) -> None:  # type: ignore[no-untyped-def]
    missing = app_operations(app.routes) - documented()
    assert not missing, f"undocumented routes (add them to gateway/openapi_ops.py): {missing}"


def test_no_documented_route_is_missing_from_the_app(app) -> None:  # type: ignore[no-untyped-def]
    stale = documented() - app_operations(app.routes)
    assert not stale, f"documented but not served: {stale}"


def test_operations_are_unique_and_have_responses() -> None:
    ops = all_operations()
    pairs = [(op.method, op.path) for op in ops]
    assert len(pairs) == len(set(pairs))
    for op in ops:
        assert op.ok, f"{op.method} {op.path} documents no success response"
        if op.auth in ("key", "admin", "metrics"):
            assert 401 in op.errors, f"{op.method} {op.path} needs a key but documents no 401"


def test_document_is_valid_openapi_31_with_resolvable_refs() -> None:
    from jsonschema.validators import validator_for

    doc = openapi_document(all_operations())
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for op in ops.values():
            bodies = [
                media["schema"]
                for part in [op.get("requestBody", {}), *op["responses"].values()]
                for media in part.get("content", {}).values()
            ]
            for schema in bodies:
                resolved = {**schema, "$defs": schemas}
                validator_for(resolved).check_schema(resolved)
                text = str(schema)
                for name in schemas:
                    text = text.replace(f"#/components/schemas/{name}", "")
                assert "#/components" not in text, path


def test_openapi_json_needs_a_key_and_serves_the_document(app) -> None:  # type: ignore[no-untyped-def]
    with TestClient(app) as client:
        assert client.get("/openapi.json").status_code == 401
        bad = client.get("/openapi.json", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        assert bad.json()["error"]["type"] == "authentication_error"
        ok = client.get("/openapi.json", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert ok.status_code == 200
        key = client.post(
            "/admin/keys", json={"name": "k"}, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ).json()["key"]
        as_key = client.get("/openapi.json", headers={"Authorization": f"Bearer {key}"})
    assert as_key.status_code == 200
    spec = as_key.json()
    assert "/v1/chat/completions" in spec["paths"]
    error = spec["components"]["schemas"]["Error"]
    jsonschema.validate(bad.json(), error)
