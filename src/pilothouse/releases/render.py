"""Render prompt templates in Jinja2's sandbox with typed, bounded variables.

Every failure a caller can cause is an ``InvalidRequestError`` naming the
variable (missing, wrong type, too long, unknown) or the template (unsafe
attribute access such as ``__class__``): a 400, never a 500, and an unsafe
expression is refused by the sandbox before it runs.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from pilothouse.errors import InvalidRequestError

# Bounds on what one `*` or `**` in a template may build: a prompt that multiplies a
# string by a billion would otherwise allocate it on the event loop.
MAX_REPEAT_CHARS = 1_000_000
MAX_EXPONENT = 1_000


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with `*` and `**` refused when the result would be huge."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is over {MAX_EXPONENT}")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if sized and len(seq) * times > MAX_REPEAT_CHARS:
                    raise SecurityError(f"repetition over {MAX_REPEAT_CHARS} items")
        return super().call_binop(context, operator, left, right)


_ENV = _BoundedSandbox(undefined=StrictUndefined, autoescape=False)
_COMPILED: OrderedDict[str, Any] = OrderedDict()
_MAX_COMPILED = 4096
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def _private_name(node: nodes.Node) -> str | None:
    """The ``_``-prefixed attribute a node reaches for (``x.__class__``, ``x['_y']``, ``|attr``)."""
    if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
        return node.attr
    key: Any = None
    if isinstance(node, nodes.Getitem):
        key = node.arg
    elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
        key = node.args[0]
    if isinstance(key, nodes.Const) and isinstance(key.value, str) and key.value.startswith("_"):
        return key.value
    return None


def declared_names(source: str, field: str) -> set[str]:
    """Variables a template uses; a syntax error or an attribute trick is a 400 naming ``field``.

    Reaching for a ``_``-prefixed attribute is refused here, at push, so such a
    template is never stored; render-time sandbox checks still catch dynamic ones.
    """
    try:
        tree = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise InvalidRequestError(
            f"invalid prompt bundle: `{field}` is not a valid template: {exc.message}",
            param=field,
        ) from None
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        private = _private_name(node)
        if private is not None:
            raise InvalidRequestError(
                f"invalid prompt bundle: unsafe template in `{field}`: "
                f"access to {private!r} is refused by the sandbox",
                param=field,
                code="unsafe_template",
            )
    return set(meta.find_undeclared_variables(tree))


def _template(source: str) -> Any:
    """Compiled templates, shared across requests (bounded; sources are immutable)."""
    template = _COMPILED.get(source)
    if template is None:
        template = _ENV.from_string(source)
        _COMPILED[source] = template
        if len(_COMPILED) > _MAX_COMPILED:
            _COMPILED.popitem(last=False)
    return template


def bind(variables: dict[str, dict[str, Any]], given: Any) -> dict[str, Any]:
    """Check supplied values against the declared variables; fill defaults."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise InvalidRequestError("`prompt_variables` must be an object", param="prompt_variables")
    unknown = sorted(set(given) - set(variables))
    if unknown:
        raise InvalidRequestError(
            f"unknown prompt variable `{unknown[0]}`", param=f"prompt_variables.{unknown[0]}"
        )
    values: dict[str, Any] = {}
    for name, spec in variables.items():
        param = f"prompt_variables.{name}"
        if name not in given or given[name] is None:
            if spec.get("default") is not None:
                values[name] = spec["default"]
                continue
            if spec.get("required"):
                raise InvalidRequestError(f"missing prompt variable `{name}`", param=param)
            values[name] = ""
            continue
        value = given[name]
        kind = spec.get("type", "string")
        bad_bool = isinstance(value, bool) and kind != "boolean"
        if bad_bool or not isinstance(value, _TYPES[kind]):
            raise InvalidRequestError(
                f"prompt variable `{name}` must be of type {kind}, got {type(value).__name__}",
                param=param,
            )
        limit = spec.get("max_length")
        if limit is not None and isinstance(value, str) and len(value) > limit:
            raise InvalidRequestError(
                f"prompt variable `{name}` is {len(value)} characters; max_length is {limit}",
                param=param,
            )
        values[name] = value
    return values


def render_text(source: str, values: dict[str, Any], field: str) -> str:
    """One template with bound values; 400 naming ``field`` for an unsafe or failing one."""
    try:
        text: str = _template(source).render(values)
    except SecurityError:
        raise InvalidRequestError(
            f"unsafe template in `{field}`: refused by the sandbox",
            param=field,
            code="unsafe_template",
        ) from None
    except (UndefinedError, TemplateSyntaxError, TypeError, ValueError) as exc:
        raise InvalidRequestError(
            f"template `{field}` failed to render: {exc}", param=field
        ) from None
    return text


def render_messages(
    bundle: dict[str, Any], given: Any, *, context: str | None = None
) -> list[dict[str, Any]]:
    """The bundle's messages with variables bound; 400 for any bad input or unsafe template.

    ``context`` is the retrieved passages of a bundle with ``retrieval`` (empty
    when previewing without a search).
    """
    values = bind(bundle["variables"], given)
    if bundle.get("retrieval") is not None:
        values["context"] = context or ""
    out: list[dict[str, Any]] = []
    for i, message in enumerate(bundle["messages"]):
        content = render_text(message["content"], values, f"messages[{i}].content")
        out.append({**message, "content": content})
    return out
