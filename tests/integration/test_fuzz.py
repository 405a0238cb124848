"""Property: no request body, however malformed, makes the gateway answer 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.gateway import ThreadedGateway, base_config, running_gateway

pytestmark = pytest.mark.integration

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
roles = st.sampled_from(["user", "system", "assistant", "tool", "robot", "", None])
messages = (
    st.lists(
        st.fixed_dictionaries(
            {"role": roles}, optional={"content": json_values, "tool_calls": json_values}
        ),
        max_size=3,
    )
    | json_values
)
FIELDS = {
    "model": st.sampled_from(["chat", "nope", ""]) | json_values,
    "messages": messages,
    "stream": st.booleans() | json_values,
    "max_tokens": st.integers(-5, 50) | json_values,
    "temperature": st.floats(-1, 3, allow_nan=False) | json_values,
    "top_p": json_values,
    "n": st.integers(0, 3) | json_values,
    "stop": json_values,
    "tools": json_values,
    "tool_choice": json_values,
    "response_format": json_values,
    "stream_options": json_values,
    "input": json_values,
}
bodies = st.fixed_dictionaries({}, optional=FIELDS) | json_values


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThreadedGateway, str]]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    models = {"chat": {"targets": [{"provider": "chaos", "model": "m"}]}}
    with running_gateway(base_config(f"sqlite:///{tmp}/ph.db", tmp, models=models)) as gw:
        yield gw, gw.create_key()


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, path=st.sampled_from(["/v1/chat/completions", "/v1/embeddings"]))
def test_fuzzed_bodies_never_yield_5xx(
    gateway: tuple[ThreadedGateway, str], body: Any, path: str
) -> None:
    gw, key = gateway
    resp = httpx.post(
        gw.url + path,
        content=orjson.dumps(body),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert resp.status_code < 500, (resp.status_code, resp.text, body)
    assert "Traceback" not in resp.text
    if resp.status_code >= 400:
        error = resp.json()["error"]
        assert isinstance(error["message"], str) and error["message"]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=200))
def test_fuzzed_bytes_never_yield_5xx(gateway: tuple[ThreadedGateway, str], raw: bytes) -> None:
    gw, key = gateway
    resp = httpx.post(
        gw.url + "/v1/chat/completions",
        content=raw,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert resp.status_code in (200, 400), (resp.status_code, resp.text)
