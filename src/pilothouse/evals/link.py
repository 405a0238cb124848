"""The eval's line to the gateway: embedded in process (``--config``) or remote (``--base-url``).

Either way requests are plain OpenAI HTTP through the full gateway pipeline,
so every case gets a request id, a ledger row and an exact cost. In embedded
mode the cost is read back from the ledger by request id; a remote gateway
may send it in ``x-pilothouse-cost-usd`` (otherwise it is reported as unknown).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import orjson
from sqlalchemy import select

from pilothouse.config.schema import Settings
from pilothouse.evals.errors import EvalError, TargetUnavailable
from pilothouse.evals.scorers.base import ChatReply
from pilothouse.limits.money import usd_to_pico
from pilothouse.store.tables import usage_records

if TYPE_CHECKING:
    from pilothouse.gateway.runtime import Runtime

COST_HEADER = "x-pilothouse-cost-usd"
RETRY_STATUSES = frozenset((429, 502, 503, 504))
_FATAL = {401: "refused the API key", 403: "does not allow this key", 404: "does not serve"}


@dataclass(slots=True)
class GatewayLink:
    client: httpx.AsyncClient
    description: str
    settings: Settings | None = None
    runtime: Runtime | None = None  # embedded mode: the gateway's ledger and engine
    retries: int = 2
    backoff_s: float = 0.5

    @property
    def embedded(self) -> bool:
        return self.runtime is not None

    async def chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> ChatReply:
        """One chat completion; fatal problems raise :class:`TargetUnavailable`."""
        body = {**params, "model": model, "messages": messages}

        async def send() -> httpx.Response:
            return await self.client.post("/chat/completions", json=body, headers=headers)

        response = await send_with_retries(send, self.retries, self.backoff_s, what=model)
        return parse_chat(response)

    async def costs(self, request_ids: list[str]) -> dict[str, int]:
        """Exact pico-USD per request id from the ledger (embedded mode only)."""
        if self.runtime is None or not request_ids:
            return {}
        await self.runtime.ledger.flush()
        query = select(usage_records.c.request_id, usage_records.c.cost_pico).where(
            usage_records.c.request_id.in_(request_ids)
        )
        async with self.runtime.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {row.request_id: int(row.cost_pico) for row in rows}

    def fingerprint(self, alias: str) -> str:
        """What an alias resolves to, so cached outputs never outlive a config change."""
        if self.settings is None:
            return f"remote:{self.client.base_url}:{alias}"
        model = self.settings.models.get(alias)
        providers = {}
        for target in model.targets if model else []:
            cfg = self.settings.provider_configs.get(target.provider)
            providers[target.provider] = msgspec.json.encode(cfg, enc_hook=lambda _o: "***")
        blob = orjson.dumps(
            {
                "alias": msgspec.to_builtins(model, enc_hook=str) if model else None,
                "providers": {k: v.decode() for k, v in providers.items()},
            },
            option=orjson.OPT_SORT_KEYS,
        )
        return "embedded:" + hashlib.sha256(blob).hexdigest()

    async def check(self, aliases: set[str]) -> None:
        """Fail fast when the gateway is down, the key is refused or an alias is unknown."""
        try:
            response = await self.client.get("/models")
        except httpx.HTTPError as exc:
            raise TargetUnavailable(
                f"cannot reach the gateway at {self.description}: {exc}"
            ) from None
        if response.status_code != 200:
            raise TargetUnavailable(
                f"gateway at {self.description} {_FATAL.get(response.status_code, 'failed')}"
                f" ({response.status_code}): {error_message(response)}"
            )
        served = {m.get("id") for m in response.json().get("data", [])}
        # Registry prompts are not aliases: the gateway resolves them per request.
        missing = sorted(a for a in aliases - served if not a.startswith("prompt:"))
        if missing:
            raise TargetUnavailable(
                f"gateway at {self.description} does not serve {', '.join(missing)} "
                f"(it serves: {', '.join(sorted(str(s) for s in served)) or 'nothing'})"
            )


async def send_with_retries(
    send: Callable[[], Awaitable[httpx.Response]], retries: int, backoff_s: float, *, what: str
) -> httpx.Response:
    """Send, retrying throttling and upstream failures; classify what remains.

    Connection failures and 401/403/404 are fatal for the whole run
    (:class:`TargetUnavailable`); other failures are this case's error
    (:class:`EvalError`), retried on the next ``--resume``.
    """
    for attempt in range(retries + 1):
        try:
            response = await send()
        except httpx.TimeoutException:
            if attempt < retries:
                continue
            raise EvalError(f"{what}: request timed out") from None
        except httpx.TransportError as exc:
            raise TargetUnavailable(f"cannot reach {what}: {type(exc).__name__}: {exc}") from None
        status = response.status_code
        if status < 400:
            return response
        if status in _FATAL:
            raise TargetUnavailable(
                f"gateway {_FATAL[status]} {what!r} ({status}): {error_message(response)}"
            )
        if status in RETRY_STATUSES and attempt < retries:
            await asyncio.sleep(_retry_delay(response, attempt, backoff_s))
            continue
        raise EvalError(f"{what}: HTTP {status}: {error_message(response)}")
    raise AssertionError("unreachable")


def _retry_delay(response: httpx.Response, attempt: int, backoff_s: float) -> float:
    header = response.headers.get("retry-after", "")
    try:
        return min(float(header), 10.0)
    except ValueError:
        return float(backoff_s * 2**attempt)


def error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", ""))[:300]
    return str(body)[:200]


def parse_chat(response: httpx.Response) -> ChatReply:
    try:
        body = response.json()
        message = body["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise EvalError(
            f"gateway returned a malformed completion: {response.text[:200]!r}"
        ) from None
    usage = body.get("usage") or {}
    return ChatReply(
        text=message.get("content") or "",
        request_id=response.headers.get("x-request-id"),
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cost_pico=header_cost(response.headers.get(COST_HEADER)),
    )


def header_cost(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return usd_to_pico(Decimal(value))
    except (InvalidOperation, ValueError):
        return None


@contextlib.asynccontextmanager
async def open_link(
    *, settings: Settings | None = None, base_url: str | None = None, api_key: str | None = None
) -> AsyncIterator[GatewayLink]:
    """An embedded gateway built from ``settings``, or a client for ``base_url``."""
    if base_url is not None:
        if not api_key:
            raise EvalError("--base-url needs --api-key (or PILOTHOUSE_API_KEY)")
        root = base_url.rstrip("/")
        root = root if root.endswith("/v1") else root + "/v1"
        timeout = httpx.Timeout(600.0, connect=10.0)
        async with httpx.AsyncClient(
            base_url=root, headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout
        ) as client:
            yield GatewayLink(client, root)
        return
    if settings is None:
        raise EvalError("no gateway: pass --config or --base-url")
    from pilothouse.gateway.embedded import embedded_gateway

    async with embedded_gateway(settings, key_name="eval") as gateway:
        yield GatewayLink(
            gateway.client, f"embedded ({settings.source})", settings, gateway.runtime
        )
