"""Azure OpenAI: the OpenAI wire format behind deployment URLs and an ``api-key`` header.

Only the edges differ from :mod:`openai_compat`: the URL names a deployment
(``{endpoint}/openai/deployments/{deployment}/{path}?api-version=...``) and
the key travels in ``api-key``. Azure ignores ``model`` in the body (the
deployment decides), so it is dropped rather than sent misleadingly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote, urlsplit

from pilothouse.config.schema import Secret
from pilothouse.providers.base import JSON
from pilothouse.providers.openai_compat import OpenAIConfig, OpenAIProvider

DEFAULT_API_VERSION = "2024-10-21"
"""The newest GA data-plane inference version for deployment URLs."""

_OPENAI_BASE_URL = OpenAIConfig(type="openai").base_url


class AzureConfig(OpenAIConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``endpoint`` is the resource URL, e.g. ``https://NAME.openai.azure.com``.

    ``deployments`` maps the model names used in ``models:`` targets to Azure
    deployment names; a model not listed is taken to be its own deployment.
    Timeouts, ``headers`` and ``max_connections`` are as for ``type: openai``.
    """

    endpoint: str
    api_key: Secret
    api_version: str = DEFAULT_API_VERSION
    deployments: dict[str, str] = {}

    def __post_init__(self) -> None:
        if self.base_url != _OPENAI_BASE_URL:
            raise ValueError("azure providers take `endpoint`, not `base_url`")
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError(
                f"endpoint must be a URL like https://NAME.openai.azure.com, got {self.endpoint!r}"
            )
        if not self.api_version:
            raise ValueError("api_version must not be empty")


class AzureProvider(OpenAIProvider):
    # mypy compares the structs' constructors (AzureConfig needs `endpoint`), not just
    # the classes; the registry only calls msgspec.convert on it, which is fine.
    config_type = AzureConfig
    config: AzureConfig

    def __init__(self, name: str, config: AzureConfig) -> None:
        super().__init__(name, config)
        self._endpoint = config.endpoint.rstrip("/")
        self._query = f"api-version={quote(config.api_version, safe='')}"

    def deployment(self, model: str) -> str:
        return self.config.deployments.get(model, model)

    def url(self, path: str, model: str) -> str:
        deployment = quote(self.deployment(model), safe="")
        return f"{self._endpoint}/openai/deployments/{deployment}/{path}?{self._query}"

    def auth_headers(self) -> dict[str, str]:
        return {"api-key": self.config.api_key.get()}

    def upstream_body(self, request: JSON, model: str) -> JSON:
        body = dict(request)
        body.pop("model", None)
        return body

    async def stream_chat(self, request: JSON, model: str, deadline: float) -> AsyncIterator[JSON]:
        """Drop Azure's content-filter annotation chunks (no choices, no usage).

        Azure sends ``prompt_filter_results`` in a chunk with empty ``choices``
        before any token; forwarding it would look like a first token (wrong
        TTFT) and carries an empty ``id``/``model``.
        """
        async for chunk in super().stream_chat(request, model, deadline):
            if chunk.get("choices") or chunk.get("usage") is not None:
                yield chunk
