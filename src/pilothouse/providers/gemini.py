"""Google Gemini (Generative Language API or Vertex AI) behind the OpenAI-shaped gateway.

Talks HTTP directly through the pooled session of :mod:`openai_compat` (no
SDK). Bodies are translated in :mod:`gemini_translate`. Two ways to reach it:

- Generative Language API (AI Studio): ``api_key`` travels in
  ``x-goog-api-key``; URLs are ``{base_url}/{api_version}/models/{model}:…``.
- Vertex AI: ``vertex: {project, location, access_token}``; the OAuth access
  token (e.g. from ``gcloud auth print-access-token`` or workload identity,
  refreshed outside the gateway and passed as ``env:NAME``) travels as a bearer
  token; URLs are ``…/projects/{p}/locations/{l}/publishers/google/models/{model}:…``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import msgspec
import orjson

from pilothouse.config.schema import Secret
from pilothouse.errors import InvalidRequestError, ProviderError
from pilothouse.providers.base import JSON, ChatResult, EmbedResult, Usage
from pilothouse.providers.gemini_translate import StreamTranslator, from_gemini, to_gemini
from pilothouse.providers.openai_compat import (
    OpenAIConfig,
    OpenAIProvider,
    parse_retry_after,
    upstream_error,
)

GENERATIVE_LANGUAGE_URL = "https://generativelanguage.googleapis.com"


class VertexConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    project: str
    location: str = "us-central1"
    access_token: Secret


class GeminiConfig(OpenAIConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Exactly one of ``api_key`` (Generative Language API) or ``vertex`` (Vertex AI)."""

    base_url: str = ""
    api_version: str = "v1beta"
    vertex: VertexConfig | None = None

    def __post_init__(self) -> None:
        if (self.api_key is None) == (self.vertex is None):
            raise ValueError("gemini providers need exactly one of `api_key` or `vertex`")
        if self.vertex is not None and not self.vertex.project:
            raise ValueError("vertex.project must not be empty")


class GeminiProvider(OpenAIProvider):
    config_type = GeminiConfig
    config: GeminiConfig

    def __init__(self, name: str, config: GeminiConfig) -> None:
        super().__init__(name, config)
        vertex = config.vertex
        if vertex is not None:
            base = config.base_url or f"https://{vertex.location}-aiplatform.googleapis.com"
            self._models = (
                f"{base.rstrip('/')}/v1/projects/{quote(vertex.project, safe='')}"
                f"/locations/{quote(vertex.location, safe='')}/publishers/google/models"
            )
        else:
            base = config.base_url or GENERATIVE_LANGUAGE_URL
            self._models = f"{base.rstrip('/')}/{config.api_version}/models"

    def url(self, path: str, model: str) -> str:
        return f"{self._models}/{quote(model, safe='')}:{path}"

    def auth_headers(self) -> dict[str, str]:
        if self.config.vertex is not None:
            return {"Authorization": f"Bearer {self.config.vertex.access_token.get()}"}
        assert self.config.api_key is not None  # enforced by GeminiConfig
        return {"x-goog-api-key": self.config.api_key.get()}

    async def chat(self, request: JSON, model: str, deadline: float) -> ChatResult:
        parsed = await self._post_json("generateContent", to_gemini(request), model, deadline)
        try:
            body, usage = from_gemini(parsed, model)
        except (AttributeError, TypeError, ValueError):
            raise ProviderError("upstream sent a malformed response") from None
        return ChatResult(body, usage)

    async def stream_chat(self, request: JSON, model: str, deadline: float) -> AsyncIterator[JSON]:
        translator = StreamTranslator(model)
        try:
            async with self.session.post(
                self.url("streamGenerateContent", model) + "?alt=sse",
                data=orjson.dumps(to_gemini(request)),
                timeout=self._timeout(deadline, stream=True),
            ) as resp:
                if resp.status != 200:
                    raw = await resp.read()
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    raise upstream_error(resp.status, raw, retry_after)
                async for line in resp.content:
                    if line.startswith(b"data:"):
                        for chunk in _translate(translator, line[5:]):
                            yield chunk
        except TimeoutError:
            raise ProviderError("upstream timed out or stalled", timeout=True) from None
        except aiohttp.ClientError as exc:
            raise ProviderError(f"upstream connection failed: {type(exc).__name__}") from None
        # Gemini ends a stream by closing it; a candidate without finishReason was cut short.
        if translator.started - translator.finished or not translator.started:
            raise ProviderError("upstream closed the stream before the answer finished")
        for chunk in translator.close():
            yield chunk

    async def embed(self, request: JSON, model: str, deadline: float) -> EmbedResult:
        texts = _embedding_inputs(request.get("input"))
        resource = f"models/{model}"
        items: list[JSON] = []
        for text in texts:
            item: JSON = {"model": resource, "content": {"parts": [{"text": text}]}}
            if isinstance(request.get("dimensions"), int):
                item["outputDimensionality"] = request["dimensions"]
            items.append(item)
        parsed = await self._post_json("batchEmbedContents", {"requests": items}, model, deadline)
        embeddings = parsed.get("embeddings")
        if not isinstance(embeddings, list) or len(embeddings) != len(texts):
            raise ProviderError("upstream returned a different number of embeddings")
        data = []
        for i, embedding in enumerate(embeddings):
            values = embedding.get("values") if isinstance(embedding, dict) else None
            if not isinstance(values, list):
                raise ProviderError("upstream sent a malformed embedding")
            data.append({"object": "embedding", "index": i, "embedding": values})
        body: JSON = {"object": "list", "data": data, "model": model}
        return EmbedResult(body, Usage(estimated=True))  # Gemini reports no token counts here


def _embedding_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise InvalidRequestError(
        "Gemini embeddings take `input` as a string or a list of strings", param="input"
    )


def _translate(translator: StreamTranslator, data: bytes) -> list[JSON]:
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ProviderError("upstream sent a malformed stream event") from None
    if not isinstance(event, dict):
        raise ProviderError("upstream sent a malformed stream event")
    error = event.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        status = code if isinstance(code, int) and 400 <= code < 600 else 502
        raise upstream_error(status, data, None)
    try:
        return translator.feed(event)
    except (AttributeError, TypeError, ValueError):
        raise ProviderError("upstream sent a malformed stream event") from None
