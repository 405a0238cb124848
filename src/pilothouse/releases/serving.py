"""Serve ``"model": "prompt:NAME@LABEL"`` (or ``@VERSION``): resolve, render, rewrite.

Label → version lookups are cached in memory; every move or delete is
invalidated on every replica by Redis pub/sub plus a one-second store poll
(the same two paths key revocation uses), so a moved label is never served
stale and a deleted one is a 404 at once. Versions are immutable and cached
without expiry (bounded).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from pilothouse.errors import InvalidRequestError, ModelNotFoundError, NotFoundError
from pilothouse.gateway.context import RequestContext
from pilothouse.releases import retrieval
from pilothouse.releases.registry import PromptRegistry
from pilothouse.releases.render import bind, render_messages, render_text
from pilothouse.releases.versions import Version

PREFIX = "prompt:"
_MAX_VERSIONS = 10_000
# Body fields that are the prompt's to decide unless the request overrides them.
_BUNDLE_FIELDS = ("tools", "response_format")


class LabelCache:
    """(name, label) → version number, and (name, version) → Version, in memory."""

    def __init__(self, registry: PromptRegistry) -> None:
        self.registry = registry
        # Searches a bundle's ``retrieval`` collection as the caller (set by the runtime).
        self.retriever: retrieval.Retriever | None = None
        self._labels: dict[tuple[str, str], int] = {}
        self._versions: OrderedDict[tuple[str, int], Version] = OrderedDict()
        self._generation = 0

    def invalidate(self, name: str, label: str) -> None:
        self._generation += 1
        self._labels.pop((name, label), None)

    def clear(self) -> None:
        self._generation += 1
        self._labels.clear()

    async def _version(self, name: str, number: int) -> Version:
        key = (name, number)
        found = self._versions.get(key)
        if found is None:
            found = await self.registry.version(name, number)
            self._versions[key] = found
            if len(self._versions) > _MAX_VERSIONS:
                self._versions.popitem(last=False)
        return found

    async def resolve(self, name: str, ref: str) -> tuple[Version, str | None]:
        if ref.isdigit():
            return await self._version(name, int(ref)), None
        number = self._labels.get((name, ref))
        if number is None:
            generation = self._generation
            number = await self.registry.label_version(name, ref)
            if number is None:
                raise NotFoundError(f"prompt {name!r} has no label {ref!r}")
            if generation == self._generation:  # no move arrived while we read the store
                self._labels[(name, ref)] = number
        return await self._version(name, number), ref


def parse_ref(model: str) -> tuple[str, str]:
    name, sep, ref = model[len(PREFIX) :].partition("@")
    if not name or not sep or not ref:
        raise InvalidRequestError(
            "`model` must look like prompt:NAME@LABEL or prompt:NAME@VERSION", param="model"
        )
    return name, ref


def is_prompt(body: dict[str, Any]) -> bool:
    model = body.get("model")
    return isinstance(model, str) and model.startswith(PREFIX)


def rewrite(
    version: Version, body: dict[str, Any], context: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The upstream body (rendered messages first) and the params the request overrode.

    ``context``: the retrieved passages, as ``{{ context }}`` or, when the
    templates do not use it, a system message of their own.
    """
    bundle = version.content
    rendered = render_messages(bundle, body.get("prompt_variables"), context=context)
    if context is not None and not retrieval.uses_context(bundle):
        rendered = retrieval.inject(rendered, context)
    extra = body.get("messages") or []
    if not isinstance(extra, list):
        raise InvalidRequestError("`messages` must be an array", param="messages")
    params: dict[str, Any] = bundle["params"]
    overrides = {k: body[k] for k in params if k in body and body[k] != params[k]}
    out: dict[str, Any] = dict(params)
    for field in _BUNDLE_FIELDS:
        if bundle.get(field):
            out[field] = bundle[field]
    out.update(
        {k: v for k, v in body.items() if k not in ("model", "messages", "prompt_variables")}
    )
    out["model"] = bundle["model"]
    out["messages"] = [*rendered, *extra]
    return out, overrides


async def apply(
    cache: LabelCache,
    ctx: RequestContext,
    body: dict[str, Any],
    *,
    version_number: int | None = None,
) -> dict[str, Any]:
    """Resolve and render a prompt request; fills the context's prompt fields.

    ``version_number`` serves that version under the requested label instead
    of the label's own (a rollout's candidate).
    """
    name, ref = parse_ref(body["model"])
    try:
        if version_number is not None:
            version, label = await cache.resolve(name, str(version_number))
            label = ref
        else:
            version, label = await cache.resolve(name, ref)
    except NotFoundError as exc:
        raise ModelNotFoundError(exc.message, param="model") from None
    context = await _retrieve(cache, ctx, version, body)
    out, overrides = rewrite(version, body, context)
    ctx.prompt = {
        "name": version.name,
        "version": version.version,
        "label": label,
        "hash": version.hash,
        "overrides": overrides or None,
        "guards": version.content.get("guards") or None,  # e.g. {"policy": "strict"}
    }
    return out


async def _retrieve(
    cache: LabelCache, ctx: RequestContext, version: Version, body: dict[str, Any]
) -> str | None:
    """The passages a bundle's ``retrieval`` block finds for this request (None: no block)."""
    spec = version.content.get("retrieval")
    if spec is None:
        return None
    if cache.retriever is None:
        raise InvalidRequestError("this gateway cannot serve prompt bundles with `retrieval`")
    values = bind(version.content["variables"], body.get("prompt_variables"))
    query = render_text(spec["query"], values, "retrieval.query")
    if not query.strip():
        raise InvalidRequestError(
            f"prompt {version.name!r}: the retrieval query rendered empty; "
            "supply the prompt_variables it uses",
            param="retrieval.query",
        )
    hits = await cache.retriever(ctx, spec, query)
    return retrieval.format_context(hits)
