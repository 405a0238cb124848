"""What an eval calls: a gateway alias, a Python function, or an HTTP endpoint.

``{model: ALIAS}`` sends the case to the gateway. ``{python: "mod:fn"}`` calls
your application (sync or async); if it declares a ``ctx`` parameter it gets
an :class:`EvalContext` whose ``chat`` goes through the same gateway with the
case's trace headers, so its model calls join the case. ``{http: {...}}``
posts a templated body to your service. ``{model: "prompt:NAME@REF"}`` (or
``{prompt: NAME@REF}``) sends the case to a registry prompt: the gateway
renders it; ``variable: NAME`` binds the case input to that prompt variable
(else the input is appended as the user message), and a case's
``metadata.variables`` fill the others.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from pilothouse.evals.errors import SuiteError
from pilothouse.evals.model import Case
from pilothouse.evals.refs import accepted, resolve_ref

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")
_CASE_ROOTS = ("id", "input", "expected", "context", "metadata")


@dataclass(frozen=True, slots=True)
class ModelTarget:
    model: str
    system: str | None = None
    variable: str | None = None  # prompt targets: the variable the case input binds to
    needs_gateway = True

    @property
    def is_prompt(self) -> bool:
        return self.model.startswith("prompt:")

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, **({"system": self.system} if self.system else {})}


@dataclass(frozen=True, slots=True)
class PythonTarget:
    ref: str
    fn: Callable[..., Any]
    extra: frozenset[str]  # which of ctx/case/metadata/context the function declares
    needs_gateway: bool = False

    def describe(self) -> dict[str, Any]:
        return {"python": self.ref}


class HttpSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    url: str
    method: str = "POST"
    body: Any = None
    response_path: str = ""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    timeout_s: float = 120.0


@dataclass(frozen=True, slots=True)
class HttpTarget:
    spec: HttpSpec
    headers: dict[str, str] = field(default_factory=dict)  # with env: secrets resolved
    needs_gateway = False

    def describe(self) -> dict[str, Any]:
        return {"http": {"url": self.spec.url, "method": self.spec.method}}


TargetSpec = ModelTarget | PythonTarget | HttpTarget


def parse_target(
    raw: Any, base_dir: Path, where: str, env: dict[str, str] | None = None
) -> TargetSpec:
    """Validate the suite's ``target:`` mapping (exactly one kind)."""
    if not isinstance(raw, dict):
        raise SuiteError(f"{where}: expected a mapping such as {{model: local}}")
    kinds = [k for k in ("model", "python", "http", "prompt") if k in raw]
    if len(kinds) != 1:
        raise SuiteError(f"{where}: give exactly one of model, python, http")
    kind = kinds[0]
    if kind == "prompt":
        ref = raw.get("prompt")
        if not isinstance(ref, str) or "@" not in ref:
            raise SuiteError(f"{where}.prompt: expected NAME@LABEL or NAME@VERSION")
        raw = {**{k: v for k, v in raw.items() if k != "prompt"}, "model": "prompt:" + ref}
        kind = "model"
    if kind == "model":
        return _model_target(raw, where)
    if kind == "python":
        return _python_target(raw, base_dir, where)
    return _http_target(raw, where, env or {})


def _model_target(raw: dict[str, Any], where: str) -> ModelTarget:
    extra = set(raw) - {"model", "system", "variable"}
    if extra:
        raise SuiteError(f"{where}: unknown key(s) {', '.join(sorted(extra))} for a model target")
    if not isinstance(raw["model"], str) or not raw["model"]:
        raise SuiteError(f"{where}.model: expected a gateway alias")
    system = raw.get("system")
    if system is not None and not isinstance(system, str):
        raise SuiteError(f"{where}.system: expected a string")
    variable = raw.get("variable")
    if variable is not None and (
        not isinstance(variable, str) or not raw["model"].startswith("prompt:")
    ):
        raise SuiteError(f"{where}.variable: only prompt targets bind a variable (a string)")
    return ModelTarget(raw["model"], system, variable)


def _python_target(raw: dict[str, Any], base_dir: Path, where: str) -> PythonTarget:
    extra = set(raw) - {"python"}
    if extra:
        raise SuiteError(f"{where}: unknown key(s) {', '.join(sorted(extra))} for a python target")
    fn = resolve_ref(str(raw["python"]), base_dir, what=f"{where}.python")
    _positional, names, var_kw = accepted(fn)
    wanted = frozenset(n for n in ("ctx", "case", "metadata", "context") if var_kw or n in names)
    return PythonTarget(str(raw["python"]), fn, wanted, needs_gateway="ctx" in wanted)


def _http_target(raw: dict[str, Any], where: str, env: dict[str, str]) -> HttpTarget:
    extra = set(raw) - {"http"}
    if extra:
        raise SuiteError(f"{where}: unknown key(s) {', '.join(sorted(extra))} for an http target")
    try:
        spec = msgspec.convert(raw["http"], HttpSpec, strict=False)
    except msgspec.ValidationError as exc:
        raise SuiteError(f"{where}.http: {exc}") from None
    if not spec.url.startswith(("http://", "https://")):
        raise SuiteError(f"{where}.http.url: expected an http(s) URL, got {spec.url!r}")
    for name in placeholders(spec.body) | placeholders(spec.url):
        if name.split(".", 1)[0] not in _CASE_ROOTS:
            raise SuiteError(
                f"{where}.http: unknown placeholder {{{{{name}}}}} "
                f"(use {', '.join(_CASE_ROOTS)}, e.g. {{{{metadata.topic}}}})"
            )
    headers = {k: _secret(v, env, f"{where}.http.headers.{k}") for k, v in spec.headers.items()}
    return HttpTarget(spec, headers)


def _secret(value: str, env: dict[str, str], where: str) -> str:
    if not value.startswith("env:"):
        return value
    name = value[4:].strip()
    if not env.get(name):
        raise SuiteError(f"{where}: environment variable {name} is not set")
    return env[name]


def placeholders(template: Any) -> set[str]:
    if isinstance(template, str):
        return set(_PLACEHOLDER.findall(template))
    if isinstance(template, dict):
        return set().union(*(placeholders(v) for v in template.values())) if template else set()
    if isinstance(template, list):
        return set().union(*(placeholders(v) for v in template)) if template else set()
    return set()


def render(template: Any, case: Case) -> Any:
    """Fill ``{{input}}``-style placeholders from the case.

    A string that is exactly one placeholder takes the value itself (so
    ``"{{input}}"`` can become a list of messages); otherwise values are
    interpolated as text.
    """
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template.strip())
        if whole:
            return case.field(whole.group(1))
        return _PLACEHOLDER.sub(lambda m: _text(case.field(m.group(1))), template)
    if isinstance(template, dict):
        return {k: render(v, case) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, case) for v in template]
    return template


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def value_at(data: Any, path: str) -> Any:
    """``choices.0.message.content``-style lookup; ``KeyError`` names the missing step."""
    current = data
    for step in path.split(".") if path else ():
        if isinstance(current, list) and step.isdigit() and int(step) < len(current):
            current = current[int(step)]
        elif isinstance(current, dict) and step in current:
            current = current[step]
        else:
            raise KeyError(step)
    return current
