"""The README's main job: `pilothouse serve --dev` on the embedded default, real local model."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.gateway import ProcessGateway, free_port

pytestmark = pytest.mark.integration


def test_dev_server_prints_a_working_key_and_curl_line(tmp_path: Path) -> None:
    port = free_port()
    gw = ProcessGateway(Path("-"), port, {})
    gw.start_command(["serve", "--dev", "--port", str(port)], cwd=tmp_path, timeout=180)
    try:
        banner = "".join(gw.output)
        key = re.search(r"development key \(shown once\): (ph-\S+)", banner)
        assert key is not None, banner
        curl = next(line for line in gw.output if "curl -s" in line)
        argv = shlex.split(curl)
        body = argv[argv.index("-d") + 1]
        resp = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            content=body,
            headers={"Authorization": f"Bearer {key.group(1)}", "Content-Type": "application/json"},
            timeout=120,
        )
        assert resp.status_code == 200, resp.text
        data = resp.json()
        assert data["choices"][0]["message"]["content"].strip()
        assert data["usage"]["prompt_tokens"] > 0 and data["usage"]["completion_tokens"] > 0
        assert resp.headers["x-pilothouse-target"] == "local/smollm2-135m"

        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key.group(1))
        chunks = list(
            client.chat.completions.create(
                model="local",
                messages=[{"role": "user", "content": "Count to three."}],
                max_tokens=12,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed.strip()
        usage = chunks[-1].usage
        assert usage is not None and 0 < usage.completion_tokens <= 12
        assert (tmp_path / "pilothouse.db").exists(), "embedded default store is ./pilothouse.db"
    finally:
        gw.stop()
