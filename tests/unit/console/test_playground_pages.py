"""Users, replay and playground pages in process: escaping, validation, CSRF, the SSE shape."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from pilothouse.config.load import parse_settings
from pilothouse.console import playground
from pilothouse.errors import InvalidRequestError
from pilothouse.gateway.app import build_app
from tests.support.gateway import base_config
from tests.unit.console.sample import XSS_REQUEST
from tests.unit.console.test_pages import ORIGIN, client, csrf_of, fill, sign_in, store_url

__all__ = ["client", "store_url"]  # fixtures


def test_users_and_replay_pages_show_user_content_as_text(
    client: TestClient, store_url: str
) -> None:
    fill(store_url)
    sign_in(client)
    users = client.get("/console/users")
    assert users.status_code == 200
    assert "&lt;b&gt;mallory&lt;/b&gt;" in users.text and "<b>mallory" not in users.text
    assert "/console/requests?user=alice" in users.text
    replay = client.get(f"/console/requests/{XSS_REQUEST}/replay")
    assert replay.status_code == 200
    assert "<script>window.__xss" not in replay.text and "<img src=x" not in replay.text
    bad = client.get("/console/users?since=whenever")
    assert bad.status_code == 200 and "“since” must be" in bad.text
    assert client.get("/console/requests/req_nope/replay").status_code == 404


def test_the_playground_streams_console_events_and_checks_its_token(client: TestClient) -> None:
    sign_in(client)
    page = client.get("/console/playground")
    assert page.status_code == 200 and 'value="chat"' in page.text
    token = csrf_of(page.text)
    form = {"csrf_token": token, "target": "chat", "message": "hello there"}
    forged = client.post("/console/playground/run", data={**form, "csrf_token": "x"})
    assert forged.status_code == 403
    cross = client.post(
        "/console/playground/run", data=form, headers={"origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    ran = client.post("/console/playground/run", data=form, headers={"origin": ORIGIN})
    assert ran.status_code == 200 and ran.headers["content-type"].startswith("text/event-stream")
    events = [
        (frame.split("\n")[0].removeprefix("event: "), orjson.loads(frame.split("\n")[1][6:]))
        for frame in ran.text.split("\n\n")
        if frame.startswith("event: ")
    ]
    assert "".join(d["text"] for name, d in events if name == "delta") == "hello there"
    name, done = events[-1]
    assert name == "done" and done["request_id"] == ran.headers["x-request-id"]
    assert done["status"] == 200 and done["cost"].startswith("$")
    refused = client.post(
        "/console/playground/run", data={**form, "target": "nosuch"}, headers={"origin": ORIGIN}
    )
    assert refused.status_code == 404 and "nosuch" in refused.json()["error"]["message"]


def events_of(text: str) -> list[tuple[str, dict[str, object]]]:
    return [
        (frame.split("\n")[0].removeprefix("event: "), orjson.loads(frame.split("\n")[1][6:]))
        for frame in text.split("\n\n")
        if frame.startswith("event: ")
    ]


def test_a_cached_answer_replays_in_the_playground_and_frees_its_slots(tmp_path: Path) -> None:
    config = base_config(
        f"sqlite:///{tmp_path}/c.db", tmp_path,
        models={"chat": {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}],
                         "cache": {"ttl_s": 600}}},
    )  # fmt: skip
    app = build_app(parse_settings(config, source="<test>"))
    with TestClient(app, base_url=ORIGIN, follow_redirects=False) as c:
        sign_in(c)
        token = csrf_of(c.get("/console/playground").text)
        form = {"csrf_token": token, "target": "chat", "message": "same question"}
        answers = []
        for _ in range(2):
            ran = c.post("/console/playground/run", data=form, headers={"origin": ORIGIN})
            assert ran.status_code == 200
            answers.append(events_of(ran.text))
        rt = app.state.runtime
        assert rt.in_flight == 0 and rt.key_slots.held("bootstrap") == 0
    first, second = answers
    text = ["".join(str(d["text"]) for n, d in ev if n == "delta") for ev in answers]
    assert text == ["same question", "same question"]
    assert first[-1][1]["cache_hit"] is False and second[-1][1]["cache_hit"] is True
    assert second[-1][1]["cost"] == "$0.00"


@pytest.mark.parametrize(
    ("form", "param"),
    [
        ({"target": ""}, "target"),
        ({"target": "chat"}, "message"),
        ({"target": "chat", "message": "x", "max_tokens": "0"}, "max_tokens"),
        ({"target": "chat", "message": "x", "max_tokens": "ten"}, "max_tokens"),
        ({"target": "chat", "message": "x", "temperature": "3"}, "temperature"),
        ({"target": "chat", "message": "x", "temperature": "nan"}, "temperature"),
        ({"target": "prompt:p@1", "variables": "[1]"}, "variables"),
        ({"target": "prompt:p@1", "variables": "{"}, "variables"),
    ],
)
def test_bad_playground_forms_name_the_field(form: dict[str, str], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        playground.request_body(form)
    assert caught.value.param == param


def test_a_playground_form_becomes_a_streamed_chat_body() -> None:
    body = playground.request_body(
        {"target": "prompt:p@prod", "system": " be brief ", "message": "hi", "max_tokens": "7",
         "temperature": "0.5", "variables": '{"q": "x"}'}
    )  # fmt: skip
    assert body == {
        "model": "prompt:p@prod",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 7,
        "temperature": 0.5,
        "prompt_variables": {"q": "x"},
    }
