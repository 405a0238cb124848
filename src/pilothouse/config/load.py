"""Load YAML config into frozen :class:`Settings`; every mistake names file and key path.

Secrets are written ``env:NAME`` and resolved here, once; nothing else in the
package reads environment variables.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import msgspec
import yaml

from pilothouse.config.schema import ModelConfig, PriceConfig, Secret, Settings
from pilothouse.errors import ConfigError, PilothouseError
from pilothouse.guard.config import GuardPolicy

_PATH_RE = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_UNKNOWN_RE = re.compile(r"^Object contains unknown field `([^`]*)`$")
_RESERVED = ("provider_configs", "source")
T = TypeVar("T")

DEFAULT_CONFIG: dict[str, Any] = {
    "providers": {"local": {"type": "llamacpp", "model_path": "default"}},
    "models": {"local": {"targets": [{"provider": "local", "model": "smollm2-135m"}]}},
}


LITERAL_REFUSED = (
    "literal secrets are refused; use env:NAME "
    "(or server.allow_literal_secrets: true, for development only)"
)
log = logging.getLogger("pilothouse.config")


class _SecretResolver:
    def __init__(self, env: Mapping[str, str], *, allow_literal: bool = False) -> None:
        self.env = env
        self.allow_literal = allow_literal
        self.literals = 0  # literal secrets accepted through the escape hatch

    def __call__(self, type_: type, obj: Any) -> Any:
        if type_ is Secret:
            if not isinstance(obj, str):
                raise ValueError("expected a string secret, e.g. env:NAME")
            if obj.startswith("env:"):
                name = obj[4:].strip()
                if not name:
                    raise ValueError("`env:` needs a variable name, e.g. env:OPENAI_API_KEY")
                value = self.env.get(name)
                if not value:
                    raise ValueError(f"environment variable {name} is not set")
                return Secret(value)
            if not self.allow_literal:
                raise ValueError(LITERAL_REFUSED)
            self.literals += 1
            return Secret(obj)
        if type_ is Decimal:
            try:
                return Decimal(str(obj))
            except InvalidOperation as exc:
                raise ValueError(f"expected a decimal number, got {obj!r}") from exc
        raise NotImplementedError(type_)


def _explain(exc: msgspec.ValidationError, prefix: str) -> tuple[str, str]:
    """Split msgspec's message into (key path, expectation)."""
    text = str(exc)
    match = _PATH_RE.search(text)
    path = prefix
    if match:
        raw = match.group("path").lstrip(".")
        raw = re.sub(r"\[(\d+)\]", r"[\1]", raw)
        path = f"{prefix}.{raw}" if prefix and raw else (raw or prefix)
        text = text[: match.start()]
    unknown = _UNKNOWN_RE.match(text)
    if unknown:
        path = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
        text = "unknown key (check the spelling and the docs for this section)"
    return path or "<root>", text


def _fail(source: str, path: str, why: str) -> ConfigError:
    return ConfigError(f"{source}: {path}: {why}")


# Connection URLs carry passwords in deployments: they may be written `env:NAME` too.
_URL_KEYS = (("store", "url"), ("redis", "url"))
# Webhook header names that carry credentials: their values must be `env:NAME` like secrets.
_SENSITIVE_HEADER = re.compile(r"auth|token|key|secret|cookie|signature", re.IGNORECASE)


def _env_ref(value: str, env: Mapping[str, str], source: str, path: str) -> str:
    name = value[4:].strip()
    if not env.get(name):
        why = f"environment variable {name} is not set" if name else "`env:` needs a name"
        raise _fail(source, path, why)
    return env[name]


def _warn_url_password(value: Any, source: str, path: str) -> None:
    """A literal connection URL with a password works, but says where the password should go."""
    if not isinstance(value, str) or value.startswith("env:"):
        return
    try:
        password = urlsplit(value).password
    except ValueError:
        return
    if password:
        log.warning(
            "%s: %s holds a literal password; write the URL as env:NAME so the file "
            "carries no credential",
            source,
            path,
        )


def _resolve_url_refs(
    raw: dict[str, Any], env: Mapping[str, str], source: str, hook: _SecretResolver
) -> dict[str, Any]:
    out = dict(raw)
    for section, key in _URL_KEYS:
        block = out.get(section)
        value = block.get(key) if isinstance(block, dict) else None
        _warn_url_password(value, source, f"{section}.{key}")
        if isinstance(value, str) and value.startswith("env:"):
            resolved = _env_ref(value, env, source, f"{section}.{key}")
            out[section] = {**block, key: resolved}  # type: ignore[dict-item]
    slo = out.get("slo")
    hook_cfg = slo.get("webhook") if isinstance(slo, dict) else None
    if isinstance(hook_cfg, dict):
        out["slo"] = {**slo, "webhook": _resolve_webhook(hook_cfg, env, source, hook)}  # type: ignore[dict-item]
    return out


def _resolve_webhook(
    block: dict[str, Any], env: Mapping[str, str], source: str, hook: _SecretResolver
) -> dict[str, Any]:
    """``slo.webhook``: url and header values may be `env:NAME`; credential headers must be."""
    block = dict(block)
    url = block.get("url")
    if isinstance(url, str) and url.startswith("env:"):
        block["url"] = _env_ref(url, env, source, "slo.webhook.url")
    else:
        _warn_url_password(url, source, "slo.webhook.url")
    headers = block.get("headers")
    if isinstance(headers, dict):
        resolved = {}
        for name, value in headers.items():
            path = f"slo.webhook.headers.{name}"
            if isinstance(value, str) and value.startswith("env:"):
                value = _env_ref(value, env, source, path)
            elif isinstance(value, str) and _SENSITIVE_HEADER.search(str(name)):
                if not hook.allow_literal:
                    raise _fail(source, path, LITERAL_REFUSED)
                hook.literals += 1
            resolved[name] = value
        block["headers"] = resolved
    return block


def _convert_entries(
    section: Any, where: str, type_: type[T], hook: _SecretResolver, source: str
) -> dict[str, T]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise _fail(source, where, f"expected a mapping, got {type(section).__name__}")
    out: dict[str, T] = {}
    for name, entry in section.items():
        try:
            out[str(name)] = msgspec.convert(entry, type_, dec_hook=hook, strict=False)
        except msgspec.ValidationError as exc:
            path, why = _explain(exc, f"{where}.{name}")
            raise _fail(source, path, why) from None
    return out


def parse_settings(
    raw: Any, *, source: str = "<config>", env: Mapping[str, str] | None = None
) -> Settings:
    """Validate an already-parsed mapping (e.g. from YAML) into :class:`Settings`."""
    from pilothouse.providers.base import provider_class

    env = os.environ if env is None else env
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise _fail(source, "<root>", f"expected a mapping, got {type(raw).__name__}")
    for key in _RESERVED:
        if key in raw:
            raise _fail(source, key, "is not a configuration key")
    server_raw = raw.get("server")
    allow_literal = isinstance(server_raw, dict) and server_raw.get("allow_literal_secrets") is True
    hook = _SecretResolver(env, allow_literal=allow_literal)
    raw = _resolve_url_refs(raw, env, source, hook)
    # Keyed sections are validated entry by entry so errors can name the entry.
    keyed = {name: raw.get(name) for name in ("models", "prices", "guards")}
    rest = {k: v for k, v in raw.items() if k not in keyed}
    try:
        settings = msgspec.convert(rest, Settings, dec_hook=hook, strict=False)
    except msgspec.ValidationError as exc:
        path, why = _explain(exc, "")
        raise _fail(source, path, why) from None
    models = _convert_entries(keyed["models"], "models", ModelConfig, hook, source)
    prices = _convert_entries(keyed["prices"], "prices", PriceConfig, hook, source)
    guards = _convert_entries(keyed["guards"], "guards", GuardPolicy, hook, source)
    settings = msgspec.structs.replace(settings, models=models, prices=prices, guards=guards)

    provider_configs: dict[str, Any] = {}
    for name, section in settings.providers.items():
        where = f"providers.{name}"
        if not isinstance(section, dict) or "type" not in section:
            raise _fail(source, where, "expected a mapping with a `type` key")
        try:
            cls = provider_class(str(section["type"]))
        except ConfigError as exc:
            raise _fail(source, f"{where}.type", exc.message) from None
        try:
            provider_configs[name] = msgspec.convert(
                section, cls.config_type, dec_hook=hook, strict=False
            )
        except msgspec.ValidationError as exc:
            path, why = _explain(exc, where)
            raise _fail(source, path, why) from None

    for name, coll in settings.rag.collections.items():
        if coll.embedder not in settings.models:
            known = ", ".join(sorted(settings.models)) or "none defined"
            raise _fail(
                source,
                f"rag.collections.{name}.embedder",
                f"unknown model alias {coll.embedder!r} (models: {known})",
            )
        from pilothouse.rag import rerank

        chosen = rerank.resolve(coll.search.rerank)
        if chosen is not None and chosen not in rerank.names():
            raise _fail(
                source,
                f"rag.collections.{name}.search.rerank",
                f"unknown reranker {chosen!r} (rerankers: {', '.join(rerank.names())})",
            )
    from pilothouse.routing.policy import validate as validate_routing

    problem = validate_routing(settings.models)  # rules, cascades, degrade aliases
    if problem is not None:
        raise _fail(source, *problem)
    for alias, model in settings.models.items():
        for i, target in enumerate(model.targets):
            if target.provider not in provider_configs:
                known = ", ".join(sorted(provider_configs)) or "none defined"
                raise _fail(
                    source,
                    f"models.{alias}.targets[{i}].provider",
                    f"unknown provider {target.provider!r} (providers: {known})",
                )
        semantic = model.cache.semantic if model.cache is not None else None
        if semantic is not None:
            problem = _semantic_problem(semantic, settings.models, provider_configs)
            if problem is not None:
                raise _fail(source, f"models.{alias}.cache.semantic.{problem[0]}", problem[1])
        if model.retries < 0:
            raise _fail(source, f"models.{alias}.retries", "must be >= 0")
        if model.guards is not None and model.guards not in settings.guards:
            defined = ", ".join(sorted(settings.guards)) or "none defined"
            raise _fail(
                source,
                f"models.{alias}.guards",
                f"unknown guard policy {model.guards!r} (guards: {defined})",
            )
    if settings.online_eval:
        from pilothouse.evals.online import parse_online_config

        base = Path(source).parent if not source.startswith("<") else Path.cwd()
        try:
            parse_online_config(settings.online_eval, base)
        except PilothouseError as exc:
            raise _fail(source, "online_eval", exc.message.removeprefix("online_eval: ")) from None
    server = settings.server
    if not 0 < server.port < 65536:
        raise _fail(source, "server.port", "must be between 1 and 65535")
    if server.max_in_flight < 1:
        raise _fail(source, "server.max_in_flight", "must be >= 1")
    if server.workers < 1:
        raise _fail(source, "server.workers", "must be >= 1")
    if hook.literals:
        log.warning(
            "%s: %d literal secret(s) accepted because server.allow_literal_secrets is true; "
            "never run like this in production: write every secret as env:NAME",
            source,
            hook.literals,
        )
    return msgspec.structs.replace(settings, provider_configs=provider_configs, source=source)


def _semantic_problem(
    semantic: Any, models: dict[str, Any], provider_configs: dict[str, Any]
) -> tuple[str, str] | None:
    """The embedder must be an alias whose every target can embed; a verifier must exist."""
    from pilothouse.cache import gate
    from pilothouse.providers.base import BaseProvider, provider_class

    embedder = models.get(semantic.embedder)
    if embedder is None:
        known = ", ".join(sorted(models)) or "none defined"
        return "embedder", f"unknown model alias {semantic.embedder!r} (models: {known})"
    for target in embedder.targets:
        cfg = provider_configs.get(target.provider)
        cls = provider_class(cfg.type) if cfg is not None else None
        if cls is None or getattr(cls, "embed", None) is BaseProvider.embed:
            return "embedder", (
                f"alias {semantic.embedder!r} does not serve embeddings "
                f"(target provider {target.provider!r})"
            )
    if not embedder.targets:
        return "embedder", f"alias {semantic.embedder!r} has no targets"
    if semantic.verifier is not None:
        try:
            gate.verifier(semantic.verifier)
        except ConfigError as exc:
            return "verifier", exc.message
    return None


def load_settings(path: str | Path | None, *, env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate a YAML file; ``None`` gives the embedded default."""
    if path is None:
        return parse_settings(DEFAULT_CONFIG, source="<embedded default>", env=env)
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config: {exc.strerror or exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{file}: invalid YAML at {where}: {problem}") from None
    return parse_settings(raw, source=str(file), env=env)


def with_overrides(settings: Settings, **server: Any) -> Settings:
    """Return ``settings`` with some ``server`` fields replaced (CLI flags win)."""
    clean = {k: v for k, v in server.items() if v is not None}
    if not clean:
        return settings
    return msgspec.structs.replace(
        settings, server=msgspec.structs.replace(settings.server, **clean)
    )
