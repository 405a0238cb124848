"""The configuration reference, generated from the schema and checked by tests/unit/test_docs.py.

Run ``python -m tests.support.config_reference`` to rewrite the generated block of
docs/configuration.md after changing a config struct; the test fails until you do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi

from pilothouse.config.schema import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
BEGIN = "<!-- BEGIN generated: python -m tests.support.config_reference -->"
END = "<!-- END generated -->"
# Filled by the loader, not written by users.
INTERNAL = {"provider_configs", "source"}
REQUIRED = "*required*"


def _default(f: mi.Field) -> Any:
    if f.default is not mi.NODEFAULT:
        return f.default
    if f.default_factory is not mi.NODEFAULT:
        return f.default_factory()
    return mi.NODEFAULT


def _structs(t: mi.Type) -> list[mi.StructType]:
    if isinstance(t, mi.StructType):
        return [t]
    if isinstance(t, mi.UnionType):
        return [s for x in t.types for s in _structs(x)]
    return []


def _walk(t: mi.StructType, prefix: str) -> Iterator[tuple[str, mi.Type, Any]]:
    for f in t.fields:
        path = prefix + f.encode_name
        if not prefix and path in INTERNAL:
            continue
        inner = _structs(f.type)
        default = _default(f)
        # A section that is a struct with a default is described by its keys.
        if not (isinstance(f.type, mi.StructType) and default is not mi.NODEFAULT):
            yield path, f.type, default
        for s in inner:
            yield from _walk(s, path + ".")
        if isinstance(f.type, mi.DictType):
            for s in _structs(f.type.value_type):
                yield from _walk(s, path + ".<name>.")
        if isinstance(f.type, mi.ListType):
            for s in _structs(f.type.item_type):
                yield from _walk(s, path + "[].")


def _builtin(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(_builtin(v) for v in value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, msgspec.Struct):
        return {k: _builtin(v) for k, v in msgspec.structs.asdict(value).items()}
    if isinstance(value, (list, tuple)):
        return [_builtin(v) for v in value]
    if isinstance(value, dict):
        return {k: _builtin(v) for k, v in value.items()}
    return value


def format_default(value: Any) -> str:
    """How a default is written in the reference table."""
    if value is mi.NODEFAULT:
        return REQUIRED
    if isinstance(value, Decimal):
        return f"`{value}`"
    text = msgspec.json.encode(_builtin(value)).decode()
    if isinstance(value, str):
        text = value
    return "`" + text.replace("|", "\\|") + "`"


def _type_name(t: mi.Type) -> str:
    if isinstance(t, mi.UnionType):
        return " or ".join(_type_name(x) for x in t.types)
    if isinstance(t, mi.LiteralType):
        return " \\| ".join(str(v) for v in t.values)
    if isinstance(t, mi.StructType):
        return "section"
    if isinstance(t, mi.ListType):
        return f"list of {_type_name(t.item_type)}"
    if isinstance(t, (mi.SetType, mi.FrozenSetType)):
        return f"set of {_type_name(t.item_type)}"
    if isinstance(t, mi.DictType):
        return f"map of {_type_name(t.value_type)}"
    if isinstance(t, mi.CustomType):
        return "secret (`env:NAME`)" if t.cls.__name__ == "Secret" else t.cls.__name__
    name = type(t).__name__.removesuffix("Type").lower()
    return {"none": "null", "str": "string", "any": "any"}.get(name, name)


def schema_keys() -> list[tuple[str, str, str]]:
    """(key path, type, default as documented) for every key in the schema."""
    return [
        (path, _type_name(t), format_default(d))
        for path, t, d in _walk(mi.type_info(Settings), "")  # type: ignore[arg-type]
    ]


def render() -> str:
    lines = [BEGIN, "", "| key | type | default |", "|---|---|---|"]
    section = None
    for path, type_name, default in schema_keys():
        top = path.split(".")[0]
        if top != section and section is not None:
            lines.append(f"| **{top}** | | |")
        section = top
        lines.append(f"| `{path}` | {type_name} | {default} |")
    lines += ["", END]
    return "\n".join(lines)


def documented() -> dict[str, str]:
    """Key path → documented default, parsed from the reference table."""
    text = DOC.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| (?:.*?) \| (.*) \|$", text, flags=re.MULTILINE)
    return dict(rows)


def write() -> None:
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    DOC.write_text(text[:start] + render() + text[end:], encoding="utf-8")


if __name__ == "__main__":
    write()
