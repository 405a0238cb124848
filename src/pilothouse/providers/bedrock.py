"""Amazon Bedrock's Converse and ConverseStream APIs behind the OpenAI-shaped gateway.

Requests are signed with SigV4 by botocore (imported lazily, only when a
``bedrock`` provider is configured) and sent over one pooled aiohttp session.
Credentials come from the config (``access_key_id``/``secret_access_key``/
``session_token`` as ``env:`` secrets) or, when those are absent, from the
standard AWS chain (environment, shared config/credentials files and
``profile``, container and instance roles), resolved in a worker thread at
start and refreshed when botocore says they are about to expire.
ConverseStream answers in AWS's binary event-stream framing, decoded by
botocore's ``EventStreamBuffer``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from pilothouse.config.schema import Secret
from pilothouse.errors import ConfigError, ProviderError, retryable_status
from pilothouse.providers.base import JSON, BaseProvider, ChatResult, ProviderConfig, remaining
from pilothouse.providers.bedrock_translate import StreamTranslator, from_converse, to_converse
from pilothouse.providers.openai_compat import parse_retry_after, upstream_error


class BedrockConfig(ProviderConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``region`` is required; give both static keys or neither (then the AWS chain is used)."""

    region: str
    endpoint_url: str | None = None  # a VPC endpoint or a local stand-in
    access_key_id: Secret | None = None
    secret_access_key: Secret | None = None
    session_token: Secret | None = None
    profile: str | None = None
    timeout_s: float = 600.0
    connect_timeout_s: float = 10.0
    stream_idle_timeout_s: float = 120.0
    max_connections: int = 1000

    def __post_init__(self) -> None:
        if not self.region:
            raise ValueError("region must not be empty")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give both access_key_id and secret_access_key, or neither")


class BedrockProvider(BaseProvider):
    config_type = BedrockConfig
    config: BedrockConfig

    def __init__(self, name: str, config: BedrockConfig) -> None:
        super().__init__(name, config)
        base = config.endpoint_url or f"https://bedrock-runtime.{config.region}.amazonaws.com"
        self._base = base.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._credentials: Any = None

    @classmethod
    def preflight(cls, config: Any) -> None:
        try:
            import botocore  # noqa: F401
        except ImportError:
            raise ConfigError(
                "bedrock providers need botocore: pip install 'pilothouse[bedrock]'"
            ) from None

    async def start(self) -> None:
        if self._session is None:
            self._credentials = await asyncio.to_thread(self._resolve_credentials)
            connector = aiohttp.TCPConnector(
                limit=self.config.max_connections, ttl_dns_cache=300, keepalive_timeout=30
            )
            self._session = aiohttp.ClientSession(
                connector=connector, skip_auto_headers=("User-Agent",)
            )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _resolve_credentials(self) -> Any:
        import botocore.credentials
        import botocore.session

        cfg = self.config
        if cfg.access_key_id is not None and cfg.secret_access_key is not None:
            token = cfg.session_token.get() if cfg.session_token else None
            return botocore.credentials.Credentials(
                cfg.access_key_id.get(), cfg.secret_access_key.get(), token
            )
        return botocore.session.Session(profile=cfg.profile).get_credentials()

    async def _frozen_credentials(self) -> Any:
        creds = self._credentials
        if creds is None:
            raise ProviderError(
                f"provider {self.name!r}: no AWS credentials found (config keys, environment, "
                "shared files or instance role)",
                upstream_status=401,
                retryable=False,
            )
        if getattr(creds, "refresh_needed", lambda: False)():
            return await asyncio.to_thread(creds.get_frozen_credentials)
        return creds.get_frozen_credentials()

    async def _signed(self, path: str, body: bytes, accept: str) -> tuple[URL, dict[str, str]]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        url = f"{self._base}{path}"
        headers = {"Content-Type": "application/json", "Accept": accept}
        request = AWSRequest(method="POST", url=url, data=body, headers=headers)
        SigV4Auth(await self._frozen_credentials(), "bedrock", self.config.region).add_auth(request)
        return URL(url, encoded=True), dict(request.headers.items())

    def _timeout(self, deadline: float, *, stream: bool) -> aiohttp.ClientTimeout:
        total = remaining(deadline, self.config.timeout_s)
        return aiohttp.ClientTimeout(
            total=total,
            connect=min(self.config.connect_timeout_s, total),
            sock_read=self.config.stream_idle_timeout_s if stream else None,
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"provider {self.name!r} used before start()")
        return self._session

    async def chat(self, request: JSON, model: str, deadline: float) -> ChatResult:
        body = orjson.dumps(to_converse(request))
        url, headers = await self._signed(_model_path(model, "converse"), body, "application/json")
        try:
            async with self.session.post(
                url, data=body, headers=headers, timeout=self._timeout(deadline, stream=False)
            ) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise bedrock_error(resp, raw)
        except TimeoutError:
            raise ProviderError("upstream timed out", timeout=True) from None
        except aiohttp.ClientError as exc:
            raise ProviderError(f"upstream connection failed: {type(exc).__name__}") from None
        try:
            parsed = orjson.loads(raw)
            if not isinstance(parsed, dict):
                raise ValueError("not an object")
            result, usage = from_converse(parsed, model)
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            raise ProviderError("upstream sent a malformed response") from None
        return ChatResult(result, usage)

    async def stream_chat(self, request: JSON, model: str, deadline: float) -> AsyncIterator[JSON]:
        from botocore.eventstream import EventStreamBuffer, InvalidPayloadLength

        body = orjson.dumps(to_converse(request))
        path = _model_path(model, "converse-stream")
        url, headers = await self._signed(path, body, "application/vnd.amazon.eventstream")
        translator = StreamTranslator(model)
        try:
            async with self.session.post(
                url, data=body, headers=headers, timeout=self._timeout(deadline, stream=True)
            ) as resp:
                if resp.status != 200:
                    raise bedrock_error(resp, await resp.read())
                buffer = EventStreamBuffer()
                async for data in resp.content.iter_any():
                    buffer.add_data(data)
                    for message in buffer:
                        for chunk in _translate(translator, message):
                            yield chunk
                        if translator.done:
                            return
        except TimeoutError:
            raise ProviderError("upstream timed out or stalled", timeout=True) from None
        except aiohttp.ClientError as exc:
            raise ProviderError(f"upstream connection failed: {type(exc).__name__}") from None
        except (InvalidPayloadLength, ValueError) as exc:
            raise ProviderError(f"upstream sent a malformed event stream: {exc}") from None
        raise ProviderError("upstream closed the stream before its metadata event")


def _model_path(model: str, operation: str) -> str:
    # Model ids and ARNs carry ':' and '/', which must travel percent-encoded.
    return f"/model/{quote(model, safe='')}/{operation}"


def _translate(translator: StreamTranslator, message: Any) -> list[JSON]:
    headers = message.headers
    try:
        payload = orjson.loads(message.payload) if message.payload else {}
    except orjson.JSONDecodeError:
        raise ProviderError("upstream sent a malformed stream event") from None
    if not isinstance(payload, dict):
        raise ProviderError("upstream sent a malformed stream event")
    if headers.get(":message-type") == "exception":
        kind = str(headers.get(":exception-type") or "exception")
        status = STREAM_EXCEPTION_STATUS.get(kind, 500)
        detail = payload.get("message") or payload.get("Message") or kind
        raise ProviderError(
            f"upstream stream failed ({kind}): {detail}",
            upstream_status=status,
            retryable=retryable_status(status),
        )
    return translator.feed(str(headers.get(":event-type") or ""), payload)


STREAM_EXCEPTION_STATUS = {
    "validationException": 400,
    "throttlingException": 429,
    "modelStreamErrorException": 424,
    "internalServerException": 500,
    "serviceUnavailableException": 503,
    "modelTimeoutException": 408,
}


def bedrock_error(resp: aiohttp.ClientResponse, raw: bytes) -> ProviderError:
    """Bedrock errors are ``{"message": ...}`` with the kind in ``x-amzn-ErrorType``."""
    kind = (resp.headers.get("x-amzn-ErrorType") or "").split(":", 1)[0]
    message = raw[:300].decode("utf-8", "replace")
    try:
        parsed = orjson.loads(raw)
        if isinstance(parsed, dict):
            message = str(parsed.get("message") or parsed.get("Message") or message)
    except orjson.JSONDecodeError:
        pass
    text = f"{kind}: {message}" if kind else message
    normalised = orjson.dumps({"error": {"message": text, "type": kind or None}})
    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
    return upstream_error(resp.status, normalised, retry_after)
