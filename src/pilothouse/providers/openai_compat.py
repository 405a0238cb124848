"""Any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp server, ...).

On the hot path: one pooled aiohttp session per provider, bodies decoded once
with orjson, and streams parsed line by line so usage and TTFT are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, ClassVar

import aiohttp
import orjson

from pilothouse.config.schema import Secret
from pilothouse.errors import ProviderError, retryable_status
from pilothouse.providers import responses_native, text_completions
from pilothouse.providers.base import (
    JSON,
    BaseProvider,
    ChatResult,
    EmbedResult,
    ProviderConfig,
    Usage,
    remaining,
)


class OpenAIConfig(ProviderConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    base_url: str = "https://api.openai.com/v1"
    api_key: Secret | None = None
    timeout_s: float = 600.0
    connect_timeout_s: float = 10.0
    stream_idle_timeout_s: float = 120.0
    max_connections: int = 1000
    headers: dict[str, str] = {}
    # The server honours `n` (OpenAI, Azure, vLLM); false for servers that return one
    # choice whatever `n` says (Ollama), so the gateway fans out instead.
    supports_n: bool = True
    # The server has the Responses API (OpenAI, recent vLLM): /v1/responses requests go to
    # its /responses endpoint instead of being translated to chat completions.
    supports_responses: bool = False


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (HTTP-date form is rare from LLM APIs; ignored)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def upstream_error(status: int, raw: bytes, retry_after: float | None) -> ProviderError:
    """Turn a non-2xx upstream answer into a :class:`ProviderError` with its message."""
    message = raw[:300].decode("utf-8", "replace")
    body: dict[str, Any] | None = None
    try:
        parsed = orjson.loads(raw)
        if isinstance(parsed, dict):
            body = parsed
            err = parsed.get("error")
            if isinstance(err, dict) and isinstance(err.get("message"), str):
                message = err["message"]
            elif isinstance(err, str):
                message = err
    except orjson.JSONDecodeError:
        pass
    return ProviderError(
        f"upstream returned {status}: {message}",
        upstream_status=status,
        retryable=retryable_status(status),
        retry_after=retry_after,
        body=body,
    )


class OpenAIProvider(BaseProvider):
    config_type: ClassVar[type[ProviderConfig]] = OpenAIConfig
    config: OpenAIConfig

    @property
    def native_n(self) -> bool:
        """Whether ``n`` goes upstream as is; see providers/fanout.py."""
        return self.config.supports_n

    def __init__(self, name: str, config: OpenAIConfig) -> None:
        super().__init__(name, config)
        self._session: aiohttp.ClientSession | None = None
        self._base = config.base_url.rstrip("/")

    # -- overridable edges (Azure changes these) ----------------------------------------

    def url(self, path: str, model: str) -> str:
        return f"{self._base}/{path}"

    def auth_headers(self) -> dict[str, str]:
        if self.config.api_key is None:
            return {}
        return {"Authorization": f"Bearer {self.config.api_key.get()}"}

    def upstream_body(self, request: JSON, model: str) -> JSON:
        body = dict(request)
        body["model"] = model
        return body

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.config.max_connections, ttl_dns_cache=300, keepalive_timeout=30
            )
            headers = {"Content-Type": "application/json", **self.auth_headers()}
            headers.update(self.config.headers)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=headers,
                json_serialize=lambda o: orjson.dumps(o).decode(),
                skip_auto_headers=("User-Agent",),
            )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"provider {self.name!r} used before start()")
        return self._session

    def _timeout(self, deadline: float, *, stream: bool) -> aiohttp.ClientTimeout:
        total = remaining(deadline, self.config.timeout_s)
        return aiohttp.ClientTimeout(
            total=total,
            connect=min(self.config.connect_timeout_s, total),
            sock_read=self.config.stream_idle_timeout_s if stream else None,
        )

    # -- operations ---------------------------------------------------------------------

    async def _post_json(self, path: str, body: JSON, model: str, deadline: float) -> JSON:
        try:
            async with self.session.post(
                self.url(path, model),
                data=orjson.dumps(body),
                timeout=self._timeout(deadline, stream=False),
            ) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    raise upstream_error(resp.status, raw, retry_after)
        except TimeoutError:
            raise ProviderError("upstream timed out", timeout=True) from None
        except aiohttp.ClientError as exc:
            raise ProviderError(f"upstream connection failed: {type(exc).__name__}") from None
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ProviderError("upstream sent a malformed (non-JSON) body") from None
        if not isinstance(parsed, dict):
            raise ProviderError("upstream sent a malformed body (not an object)")
        return parsed

    async def chat(self, request: JSON, model: str, deadline: float) -> ChatResult:
        body = self.upstream_body(request, model)
        body.pop("stream_options", None)
        body["stream"] = False
        parsed = await self._post_json("chat/completions", body, model, deadline)
        if not isinstance(parsed.get("choices"), list):
            raise ProviderError("upstream response has no `choices`")
        usage = Usage.from_openai(parsed.get("usage"))
        if usage is None:
            usage = Usage(estimated=True)
        return ChatResult(parsed, usage)

    async def stream_chat(self, request: JSON, model: str, deadline: float) -> AsyncIterator[JSON]:
        body = self.upstream_body(request, model)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        async for chunk in self._stream_events("chat/completions", body, model, deadline):
            yield chunk

    # Legacy text completions: the canonical chat request in, chat shape out (see
    # providers/text_completions.py); ``extras`` are the fields only /completions knows.
    native_completions = True

    async def complete(
        self, request: JSON, extras: JSON, model: str, deadline: float
    ) -> ChatResult:
        body = text_completions.upstream_body(request, extras, model)
        body.pop("stream_options", None)
        body["stream"] = False
        parsed = await self._post_json("completions", body, model, deadline)
        if not isinstance(parsed.get("choices"), list):
            raise ProviderError("upstream response has no `choices`")
        usage = Usage.from_openai(parsed.get("usage")) or Usage(estimated=True)
        return ChatResult(text_completions.text_to_chat(parsed), usage)

    async def stream_complete(
        self, request: JSON, extras: JSON, model: str, deadline: float
    ) -> AsyncIterator[JSON]:
        body = text_completions.upstream_body(request, extras, model)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        async for chunk in self._stream_events("completions", body, model, deadline):
            yield text_completions.text_chunk_to_chat(chunk)

    # The Responses API: the canonical chat request in, chat shape out (see
    # providers/responses_native.py); ``extras`` are the fields only /responses knows.
    @property
    def native_responses(self) -> bool:
        return self.config.supports_responses

    async def respond(self, request: JSON, extras: JSON, model: str, deadline: float) -> ChatResult:
        body = responses_native.upstream_body(request, extras, model)
        parsed = await self._post_json("responses", body, model, deadline)
        chat, usage = responses_native.to_chat(parsed)
        return ChatResult(chat, usage)

    async def stream_respond(
        self, request: JSON, extras: JSON, model: str, deadline: float
    ) -> AsyncIterator[JSON]:
        body = {**responses_native.upstream_body(request, extras, model), "stream": True}
        decoder = responses_native.ChunkDecoder(model)
        events = self._stream_events("responses", body, model, deadline)
        async with contextlib.aclosing(events):
            async for event in events:
                for chunk in decoder.decode(event):
                    yield chunk
                if decoder.done:
                    return
        raise ProviderError("upstream closed the stream before the response completed")

    async def _stream_events(
        self, path: str, body: JSON, model: str, deadline: float
    ) -> AsyncGenerator[JSON]:
        """POST ``body`` and yield each SSE event's JSON until ``[DONE]``."""
        try:
            async with self.session.post(
                self.url(path, model),
                data=orjson.dumps(body),
                timeout=self._timeout(deadline, stream=True),
            ) as resp:
                if resp.status != 200:
                    raw = await resp.read()
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    raise upstream_error(resp.status, raw, retry_after)
                async for line in resp.content:
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        return
                    try:
                        chunk = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        raise ProviderError("upstream sent a malformed stream event") from None
                    if isinstance(chunk, dict) and "error" in chunk and "choices" not in chunk:
                        raise upstream_error(502, data, None)
                    yield chunk
                raise ProviderError("upstream closed the stream before [DONE]")
        except TimeoutError:
            raise ProviderError("upstream timed out or stalled", timeout=True) from None
        except aiohttp.ClientError as exc:
            raise ProviderError(f"upstream connection failed: {type(exc).__name__}") from None
        except asyncio.CancelledError:
            raise

    async def moderate(self, request: JSON, model: str, deadline: float) -> JSON:
        """``POST /moderations`` as is (free at OpenAI: no usage to record)."""
        parsed = await self._post_json(
            "moderations", self.upstream_body(request, model), model, deadline
        )
        if not isinstance(parsed.get("results"), list):
            raise ProviderError("upstream moderation response has no `results`")
        return parsed

    async def embed(self, request: JSON, model: str, deadline: float) -> EmbedResult:
        body = self.upstream_body(request, model)
        parsed = await self._post_json("embeddings", body, model, deadline)
        usage = Usage.from_openai(parsed.get("usage")) or Usage(estimated=True)
        return EmbedResult(parsed, usage)
