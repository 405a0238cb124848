"""Running one case against the target, with the case's trace headers on every call.

Each sample gets a W3C trace id. Gateway calls carry it as ``traceparent``
plus ``x-pilothouse-metadata`` (run, case, repeat), which the ledger stores
with the usage row, so spend and traces can be joined back to eval cases.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx
import orjson

from pilothouse.evals.errors import EvalError, TargetUnavailable
from pilothouse.evals.link import GatewayLink, error_message, header_cost, send_with_retries
from pilothouse.evals.model import Case
from pilothouse.evals.refs import call
from pilothouse.evals.targets import HttpTarget, ModelTarget, PythonTarget, TargetSpec, render
from pilothouse.evals.targets import value_at as _value_at


@dataclass(slots=True)
class CallInfo:
    run_id: str
    case: Case
    repeat: int
    trace_id: str = field(default_factory=lambda: secrets.token_hex(16))

    def headers(self) -> dict[str, str]:
        meta = {"eval_run": self.run_id, "eval_case": self.case.id, "eval_repeat": self.repeat}
        return {
            "traceparent": f"00-{self.trace_id}-{secrets.token_hex(8)}-01",
            "x-pilothouse-metadata": orjson.dumps(meta).decode(),
        }


@dataclass(slots=True)
class TargetOutput:
    text: str
    request_ids: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_pico: int | None = None  # known now (cost header); else resolved from the ledger


def messages_for(case: Case, system: str | None = None) -> list[dict[str, Any]]:
    head = [{"role": "system", "content": system}] if system else []
    if isinstance(case.input, str):
        return [*head, {"role": "user", "content": case.input}]
    return [*head, *case.input]


def prompt_request(
    case: Case, spec: ModelTarget, params: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Messages and params for a registry prompt target (the gateway renders the prompt)."""
    meta = case.metadata if isinstance(case.metadata, dict) else {}
    variables = dict(meta.get("variables") or {})
    messages: list[dict[str, Any]] = []
    if spec.variable is not None and isinstance(case.input, str):
        variables[spec.variable] = case.input
    else:
        messages = messages_for(case, spec.system)
    return messages, {**params, "prompt_variables": variables}


class EvalContext:
    """Handed to ``python`` targets that declare ``ctx``: gateway calls that join the case."""

    def __init__(self, link: GatewayLink | None, info: CallInfo, params: dict[str, Any]) -> None:
        self.case = info.case
        self.trace_id = info.trace_id
        self.headers = info.headers()
        self.params = params
        self.request_ids: list[str] = []
        self.input_tokens = 0
        self.output_tokens = 0
        self._link = link

    async def chat(self, prompt: str | list[dict[str, Any]], *, model: str, **params: Any) -> str:
        """Ask ``model`` through the gateway; the suite's params apply unless overridden."""
        if self._link is None:
            raise EvalError("this target needs a gateway (use --config or --base-url)")
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        reply = await self._link.chat(model, messages, {**self.params, **params}, self.headers)
        if reply.request_id:
            self.request_ids.append(reply.request_id)
        self.input_tokens += reply.input_tokens
        self.output_tokens += reply.output_tokens
        return reply.text


class TargetSession:
    """The target, ready to run cases (owns an HTTP client for ``http`` targets)."""

    def __init__(self, spec: TargetSpec, link: GatewayLink | None, params: dict[str, Any]) -> None:
        self.spec = spec
        self.link = link
        self.params = params
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> TargetSession:
        if isinstance(self.spec, HttpTarget):
            self._http = httpx.AsyncClient(timeout=self.spec.spec.timeout_s)
        if isinstance(self.spec, ModelTarget) and self.link is None:
            raise EvalError("a model target needs a gateway (use --config or --base-url)")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._http is not None:
            await self._http.aclose()

    def fingerprint(self) -> str:
        if isinstance(self.spec, ModelTarget):
            gateway = self.link.fingerprint(self.spec.model) if self.link else ""
            return f"model:{self.spec.model}:{self.spec.system or ''}:{gateway}"
        if isinstance(self.spec, PythonTarget):
            return f"python:{self.spec.ref}"
        return f"http:{self.spec.spec.method}:{self.spec.spec.url}"

    def cache_payload(self, case: Case) -> Any:
        """What the target actually receives for this case (the cache key's input part)."""
        if isinstance(self.spec, HttpTarget):
            return {
                "url": render(self.spec.spec.url, case),
                "body": render(self.spec.spec.body, case),
            }
        if isinstance(self.spec, PythonTarget) and self.spec.extra - {"ctx"}:
            return {"input": case.input, "context": case.context, "metadata": case.metadata}
        return case.input

    async def run(self, info: CallInfo) -> TargetOutput:
        if isinstance(self.spec, ModelTarget):
            return await self._model(self.spec, info)
        if isinstance(self.spec, PythonTarget):
            return await self._python(self.spec, info)
        return await self._http_call(self.spec, info)

    async def _model(self, spec: ModelTarget, info: CallInfo) -> TargetOutput:
        assert self.link is not None
        messages = messages_for(info.case, spec.system)
        params = self.params
        if spec.is_prompt:
            messages, params = prompt_request(info.case, spec, params)
        reply = await self.link.chat(spec.model, messages, params, info.headers())
        ids = [reply.request_id] if reply.request_id else []
        return TargetOutput(
            reply.text, ids, reply.input_tokens, reply.output_tokens, reply.cost_pico
        )

    async def _python(self, spec: PythonTarget, info: CallInfo) -> TargetOutput:
        ctx = EvalContext(self.link, info, self.params)
        available = {
            "ctx": ctx,
            "case": info.case,
            "metadata": info.case.metadata,
            "context": info.case.context,
        }
        kwargs = {k: v for k, v in available.items() if k in spec.extra}
        try:
            result = await call(spec.fn, info.case.input, **kwargs)
        except (EvalError, TargetUnavailable):
            raise
        except Exception as exc:
            raise EvalError(f"{spec.ref} raised {type(exc).__name__}: {exc}") from None
        text = result if isinstance(result, str) else orjson.dumps(result, default=str).decode()
        return TargetOutput(text, ctx.request_ids, ctx.input_tokens, ctx.output_tokens)

    async def _http_call(self, spec: HttpTarget, info: CallInfo) -> TargetOutput:
        assert self._http is not None
        http = spec.spec
        url = render(http.url, info.case)
        body = render(http.body, info.case)
        headers = {**spec.headers, "traceparent": info.headers()["traceparent"]}
        client = self._http

        async def send() -> httpx.Response:
            kwargs: dict[str, Any] = {"headers": headers}
            if body is not None:
                kwargs["json"] = body
            return await client.request(http.method, url, **kwargs)

        response = await send_with_retries(send, 2, 0.5, what=url)
        request_id = response.headers.get("x-request-id")
        text = _extract(response, http.response_path)
        return TargetOutput(
            text,
            [request_id] if request_id else [],
            cost_pico=header_cost(response.headers.get("x-pilothouse-cost-usd")),
        )


def _extract(response: httpx.Response, path: str) -> str:
    try:
        data = response.json()
    except ValueError:
        if path:
            raise EvalError(
                f"response is not JSON, cannot read {path!r}: {error_message(response)}"
            ) from None
        return response.text
    try:
        value = _value_at(data, path)
    except KeyError as exc:
        raise EvalError(f"response has no {path!r} (missing {exc.args[0]!r})") from None
    return value if isinstance(value, str) else orjson.dumps(value).decode()
