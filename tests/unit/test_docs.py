"""Docs that match behaviour: config reference, CLI help, and every quoted command."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from pilothouse.cli.main import app
from tests.support import config_reference

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_config_key_is_in_the_reference_with_the_codes_default() -> None:
    documented = config_reference.documented()
    missing = [path for path, _, _ in config_reference.schema_keys() if path not in documented]
    assert not missing, (
        f"undocumented config keys {missing}; run `python -m tests.support.config_reference`"
    )
    wrong = {
        path: (documented[path], default)
        for path, _, default in config_reference.schema_keys()
        if documented[path] != default
    }
    assert not wrong, f"documented default differs from the code (doc, code): {wrong}"


def test_reference_has_no_key_the_schema_lacks() -> None:
    known = {path for path, _, _ in config_reference.schema_keys()}
    stale = sorted(set(config_reference.documented()) - known)
    assert not stale, f"docs/configuration.md documents keys the schema does not have: {stale}"


def test_every_top_level_section_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = {m for m in re.findall(r"^\| `([a-z_]+)[`.]", readme, flags=re.MULTILINE)}
    sections = {path.split(".")[0] for path, _, _ in config_reference.schema_keys()}
    assert sections - table == set(), f"README config table lacks {sections - table}"


def _is_group(cmd: Any) -> bool:
    return hasattr(cmd, "commands")


def _commands() -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        found.append(path)
        if _is_group(cmd):
            for name, sub in cmd.commands.items():
                walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


@pytest.mark.parametrize("path", _commands(), ids=lambda p: " ".join(p) or "pilothouse")
def test_every_command_help_renders(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert "Traceback" not in result.output


# Lines of program output that start with the program's name, not invocations.
_OUTPUT = re.compile(r"^pilothouse ready on ")


def _quoted_commands() -> list[tuple[str, str]]:
    """`pilothouse …` invocations quoted in code spans and code blocks of the docs."""
    found: list[tuple[str, str]] = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.DOTALL)
        prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
        inline = re.findall(r"`(pilothouse [^`]+)`", prose)
        lines = [ln for b in blocks for ln in b.replace("\\\n", " ").splitlines()] + inline
        for line in lines:
            line = line.split(" #")[0]
            starts = [m.start(1) for m in re.finditer(r"(?:^|[\s$(])(pilothouse [a-z])", line)]
            for begin, end in zip(starts, [*starts[1:], len(line)][: len(starts)], strict=True):
                command = line[begin:end].strip()
                if not _OUTPUT.match(command):
                    found.append((doc.name, command))
    return found


def _resolve(words: list[str]) -> tuple[list[str], list[Any], list[str]]:
    """Follow subcommand words (``a|b`` names alternatives); return path, leaves, rest."""
    cmds: list[Any] = [typer.main.get_command(app)]
    path: list[str] = []
    i = 0
    while i < len(words) and all(_is_group(c) for c in cmds):
        names = words[i].split("|")
        if not all(n in c.commands for c in cmds for n in names):
            break
        cmds = [c.commands[n] for c in cmds for n in names]
        path.append(words[i])
        i += 1
    return path, cmds, words[i:]


def test_docs_quote_commands() -> None:
    assert len(_quoted_commands()) > 30


@pytest.mark.parametrize("doc,line", _quoted_commands())
def test_every_quoted_command_exists(doc: str, line: str) -> None:
    try:
        words = shlex.split(line)[1:]
    except ValueError:
        words = line.split()[1:]
    path, cmds, rest = _resolve(words)
    where = f"pilothouse {' '.join(path)}".strip()
    assert path, f"{doc}: `{line}`: no such command"
    # A bare group (`pilothouse eval`) names the group; anything after it must be a command.
    if rest or len(cmds) > 1:
        nxt = rest[0] if rest else ""
        assert not any(_is_group(c) for c in cmds), f"{doc}: `{line}`: no `{where} {nxt}`"
    # Every option the docs use must be one the command takes.
    used = {
        alt.strip("[]").split("=")[0]
        for w in rest
        for alt in w.split("|")  # `--user|--key|--request`: each alternative is an option
        if alt.strip("[").startswith("-")
    }
    used = {u for u in used if re.fullmatch(r"--?[a-z][a-z-]*", u)}
    for cmd in cmds:
        options = {o for p in cmd.params for o in [*p.opts, *p.secondary_opts]} | {"--help"}
        unknown = sorted(used - options)
        assert not unknown, f"{doc}: `{line}`: {unknown} are not options of `{cmd.name}`"


def test_every_http_route_is_in_the_readme() -> None:
    from pilothouse.gateway.openapi_ops import all_operations

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([A-Z]+ /[^`?\[]*)", readme, flags=re.MULTILINE))
    unprefixed = {"/chat/completions", "/completions", "/embeddings", "/models", "/moderations"}
    routes = {
        f"{op.method} {op.path}"
        for op in all_operations()
        if not op.path.startswith("/console") and op.path not in unprefixed
    }
    assert not routes - rows, f"README's endpoint tables lack {sorted(routes - rows)}"
    assert not rows - routes, f"README documents routes the gateway lacks: {sorted(rows - routes)}"


def test_links_stay_inside_the_repository() -> None:
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#]+)[^)]*\)", text):
            if re.match(r"[a-z]+://", target):
                continue  # a web address, not a file
            resolved = (doc.parent / target).resolve()
            assert resolved.is_relative_to(ROOT), f"{doc.name} links outside the repo: {target}"
            assert resolved.exists(), f"{doc.name} links a missing file: {target}"
        assert "../shared/" not in text, f"{doc.name} names a file outside the repository"


def _same(documented: str, code: str) -> bool | None:
    """Whether a README default equals the code's; None when the README gives prose."""
    code = code.strip("`").replace(" ", "")
    documented = documented.strip().strip("`")
    if documented.startswith("["):
        return documented.replace(" ", "") == code
    if " " in documented:
        return None  # "4 MiB", "memory or redis", "256 tokens": described, not literal
    try:
        return float(documented) == float(code)
    except ValueError:
        return documented == code


def test_readme_config_table_defaults_equal_the_codes() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| section | keys (default) |") :]
    table = table[: table.index("\n\n")]
    code = {path: default for path, _, default in config_reference.schema_keys()}
    checked, wrong = 0, []
    for section, cells in re.findall(r"^\| `([a-z_]+)[^`]*` \| (.*) \|$", table, re.MULTILINE):
        for key, inner in re.findall(r"`([a-z_]+)` \(([^()]*)\)", cells):
            path = f"{section}.{key}"
            value = inner if inner.startswith("[") else re.split(r"[;,]|: ", inner)[0]
            if path in code and (same := _same(value, code[path])) is not None:
                checked += 1
                if not same:
                    wrong.append(f"{path}: README {value!r}, code {code[path]}")
    assert checked > 20
    assert not wrong, wrong
