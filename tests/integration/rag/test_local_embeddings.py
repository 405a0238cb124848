"""The ``local_embeddings`` provider behind the real gateway, with the bundled weights."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from tests.support.gateway import ThreadedGateway, base_config, running_gateway

pytestmark = pytest.mark.integration

# sentence-transformers' README quick start, computed with all-MiniLM-L6-v2 on torch.
SENTENCES = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
REFERENCE = np.array([[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]])


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedGateway]:
    tmp = tmp_path_factory.mktemp("embed")
    cfg = base_config(
        f"sqlite:///{tmp}/pilothouse.db",
        Path(tmp),
        providers={"minilm": {"type": "local_embeddings", "model": "all-minilm-l6-v2"}},
        models={"embed-local": {"targets": [{"provider": "minilm", "model": "all-minilm-l6-v2"}]}},
    )
    with running_gateway(cfg) as gw:
        yield gw


def test_vectors_match_the_published_reference_similarities(gateway: ThreadedGateway) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.create_key())
    resp = client.embeddings.create(model="embed-local", input=SENTENCES)
    vectors = np.array([d.embedding for d in resp.data])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.abs(vectors @ vectors.T - REFERENCE).max() < 1.5e-4
    assert resp.usage.prompt_tokens > len(SENTENCES)


def test_a_large_batch_keeps_input_order_and_base64_decodes(gateway: ThreadedGateway) -> None:
    key = gateway.create_key()
    texts = [f"document number {i} about {'routing' if i % 2 else 'budgets'}" for i in range(40)]
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=120) as http:
        batch = http.post("/v1/embeddings", json={"model": "embed-local", "input": texts}).json()
        one = http.post("/v1/embeddings", json={"model": "embed-local", "input": texts[7]}).json()
        b64 = http.post(
            "/v1/embeddings",
            json={"model": "embed-local", "input": texts[7], "encoding_format": "base64"},
        ).json()
    assert [d["index"] for d in batch["data"]] == list(range(40))
    single = np.array(one["data"][0]["embedding"])
    assert np.abs(np.array(batch["data"][7]["embedding"]) - single).max() < 1e-4
    decoded = np.frombuffer(__import__("base64").b64decode(b64["data"][0]["embedding"]), "<f4")
    assert np.abs(decoded - single).max() < 1e-6


def test_token_arrays_are_a_precise_400(gateway: ThreadedGateway) -> None:
    key = gateway.create_key()
    resp = httpx.post(
        gateway.url + "/v1/embeddings",
        json={"model": "embed-local", "input": [[1, 2, 3]]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert resp.status_code == 400, resp.text
    assert "token arrays" in resp.json()["error"]["message"]
