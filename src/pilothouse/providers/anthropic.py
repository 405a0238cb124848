"""Anthropic's Messages API behind the OpenAI-shaped gateway.

Talks HTTP directly (one pooled aiohttp session, orjson; no SDK). Requests and
complete responses are translated in :mod:`anthropic_translate`; streams are
translated event by event here by :class:`StreamTranslator`, so the client
sees ordinary ``chat.completion.chunk`` objects and a final usage chunk.
Embeddings are not offered by Anthropic; ``embed`` raises a clear 400.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from pilothouse.config.schema import Secret
from pilothouse.errors import ProviderError, retryable_status
from pilothouse.providers.anthropic_translate import (
    finish_reason,
    from_anthropic,
    to_anthropic,
    usage_from_anthropic,
)
from pilothouse.providers.base import (
    JSON,
    BaseProvider,
    ChatResult,
    ProviderConfig,
    Usage,
    remaining,
)
from pilothouse.providers.openai_compat import parse_retry_after, upstream_error

# Anthropic error ``type`` → the HTTP status it is sent with (for errors inside streams).
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class AnthropicConfig(ProviderConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``base_url`` may be given with or without the trailing ``/v1``."""

    base_url: str = "https://api.anthropic.com"
    api_key: Secret
    anthropic_version: str = "2023-06-01"
    default_max_tokens: int = 4096
    timeout_s: float = 600.0
    connect_timeout_s: float = 10.0
    stream_idle_timeout_s: float = 120.0
    max_connections: int = 1000
    headers: dict[str, str] = {}

    def __post_init__(self) -> None:
        if self.default_max_tokens < 1:
            raise ValueError(f"default_max_tokens must be >= 1, got {self.default_max_tokens}")


def stream_error(event: JSON) -> ProviderError:
    """An ``error`` event inside a 200 stream (e.g. overloaded) → :class:`ProviderError`."""
    error = event.get("error")
    if not isinstance(error, dict):
        error = {}
    kind = str(error.get("type") or "api_error")
    status = ERROR_STATUS.get(kind, 500)
    message = str(error.get("message") or kind)
    return ProviderError(
        f"upstream stream failed ({kind}): {message}",
        upstream_status=status,
        retryable=retryable_status(status),
        body=event,
    )


class StreamTranslator:
    """Anthropic stream events → OpenAI chunks, one event at a time.

    Every chunk carries the same ``id``/``created``/``model``; the role comes
    on the first chunk; each ``tool_use`` block becomes a tool call whose
    OpenAI ``index`` counts tool calls only (Anthropic's block index also
    counts text blocks). Usage is taken from ``message_start`` and updated
    by ``message_delta`` (whose counts are cumulative).
    """

    def __init__(self, model: str) -> None:
        self.id = ""
        self.created = int(time.time())
        self.model = model
        self.usage: JSON = {}
        self.tool_index: dict[int, int] = {}
        self.finished = False
        self.done = False

    def feed(self, event: JSON) -> list[JSON]:
        kind = event.get("type")
        if kind == "message_start":
            return self._start(event.get("message") or {})
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "content_block_delta":
            return self._block_delta(event)
        if kind == "message_delta":
            self.usage.update(event.get("usage") or {})
            stop_reason = (event.get("delta") or {}).get("stop_reason")
            return [self._finish(stop_reason)] if stop_reason else []
        if kind == "message_stop":
            self.done = True
            out = [] if self.finished else [self._finish(None)]
            usage = usage_from_anthropic(self.usage) if self.usage else Usage(estimated=True)
            return [*out, {**self._frame(), "choices": [], "usage": usage.to_openai()}]
        if kind == "error":
            raise stream_error(event)
        return []  # ping, content_block_stop, and event types added after this was written

    def _frame(self) -> JSON:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**self._frame(), "choices": [choice]}

    def _start(self, message: JSON) -> list[JSON]:
        self.id = str(message.get("id") or f"msg_{time.time_ns()}")
        self.model = str(message.get("model") or self.model)
        self.usage = dict(message.get("usage") or {})
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, event: JSON) -> list[JSON]:
        block = event.get("content_block") or {}
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if block.get("type") != "tool_use":
            return []
        index = self.tool_index.setdefault(int(event.get("index", 0)), len(self.tool_index))
        initial = block.get("input")
        arguments = orjson.dumps(initial).decode() if initial else ""
        call = {
            "index": index,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": arguments},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, event: JSON) -> list[JSON]:
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
            index = self.tool_index.get(int(event.get("index", 0)))
            if index is None:
                raise ProviderError("upstream sent tool input for an unknown content block")
            call = {"index": index, "function": {"arguments": delta["partial_json"]}}
            return [self._chunk({"tool_calls": [call]})]
        return []  # thinking, signatures, and deltas that carry nothing

    def _finish(self, stop_reason: Any) -> JSON:
        self.finished = True
        return self._chunk({}, finish_reason(stop_reason))


class AnthropicProvider(BaseProvider):
    config_type = AnthropicConfig
    config: AnthropicConfig

    def __init__(self, name: str, config: AnthropicConfig) -> None:
        super().__init__(name, config)
        base = config.base_url.rstrip("/")
        self._url = (base if base.endswith("/v1") else base + "/v1") + "/messages"
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is not None:
            return
        headers = {
            "Content-Type": "application/json",
            "x-api-key": self.config.api_key.get(),
            "anthropic-version": self.config.anthropic_version,
            **self.config.headers,
        }
        connector = aiohttp.TCPConnector(
            limit=self.config.max_connections, ttl_dns_cache=300, keepalive_timeout=30
        )
        self._session = aiohttp.ClientSession(
            connector=connector, headers=headers, skip_auto_headers=("User-Agent",)
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _post(self, body: JSON, deadline: float, *, stream: bool) -> Any:
        if self._session is None:
            raise RuntimeError(f"provider {self.name!r} used before start()")
        total = remaining(deadline, self.config.timeout_s)
        timeout = aiohttp.ClientTimeout(
            total=total,
            connect=min(self.config.connect_timeout_s, total),
            sock_read=self.config.stream_idle_timeout_s if stream else None,
        )
        return self._session.post(self._url, data=orjson.dumps(body), timeout=timeout)

    async def chat(self, request: JSON, model: str, deadline: float) -> ChatResult:
        body = to_anthropic(request, model, self.config.default_max_tokens)
        try:
            async with self._post(body, deadline, stream=False) as resp:
                raw = await resp.read()
                _raise_for_status(resp, raw)
        except TimeoutError:
            raise ProviderError("upstream timed out", timeout=True) from None
        except aiohttp.ClientError as exc:
            raise ProviderError(f"upstream connection failed: {type(exc).__name__}") from None
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ProviderError("upstream sent a malformed (non-JSON) body") from None
        if not isinstance(message, dict):
            raise ProviderError("upstream sent a malformed body (not an object)")
        try:
            result, usage = from_anthropic(message, model)
        except (AttributeError, TypeError, ValueError):
            raise ProviderError("upstream sent a malformed message") from None
        return ChatResult(result, usage)

    async def stream_chat(self, request: JSON, model: str, deadline: float) -> AsyncIterator[JSON]:
        body = to_anthropic(request, model, self.config.default_max_tokens)
        body["stream"] = True
        translator = StreamTranslator(model)
        try:
            async with self._post(body, deadline, stream=True) as resp:
                if resp.status != 200:
                    _raise_for_status(resp, await resp.read())
                async for line in resp.content:
                    if not line.startswith(b"data:"):
                        continue  # `event:` names repeat the data's `type`; blank separators
                    for chunk in _translate(translator, line[5:]):
                        yield chunk
                    if translator.done:
                        return
        except TimeoutError:
            raise ProviderError("upstream timed out or stalled", timeout=True) from None
        except aiohttp.ClientError as exc:
            raise ProviderError(f"upstream connection failed: {type(exc).__name__}") from None
        raise ProviderError("upstream closed the stream before message_stop")


def _translate(translator: StreamTranslator, data: bytes) -> list[JSON]:
    """One SSE ``data:`` payload → chunks; anything unreadable is a retryable failure."""
    try:
        event = orjson.loads(data)
        if isinstance(event, dict):
            return translator.feed(event)
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        pass
    raise ProviderError("upstream sent a malformed stream event")


def _raise_for_status(resp: aiohttp.ClientResponse, raw: bytes) -> None:
    """Anthropic's error JSON carries ``error.message``, as OpenAI's does."""
    if resp.status != 200:
        retry_after = parse_retry_after(resp.headers.get("retry-after"))
        raise upstream_error(resp.status, raw, retry_after)
