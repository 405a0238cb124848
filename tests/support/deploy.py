"""Helpers for the deploy/ artifacts: the tools that validate them offline, and the
Dockerfile's runtime stage read as data (so tests run what the image runs)."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
OVERLAYS = sorted(p.parent for p in (DEPLOY / "k8s" / "overlays").glob("*/kustomization.yaml"))
# The compose specification's JSON schema, as docker-compose 1.29.2 (PyPI) ships it;
# `make` extracts it here (see the Makefile's install step).
COMPOSE_SCHEMA = Path(sys.prefix) / "share" / "pilothouse-tools" / "compose_spec.json"
COMPOSE_WHEEL_MEMBER = "compose/config/compose_spec.json"


def tool(name: str) -> str:
    """A validation tool from the dev extra: the venv's own copy first."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: `pip install -e '.[dev]'` provides it")
    return found


def run_tool(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)


def compose_schema() -> dict[str, Any]:
    if not COMPOSE_SCHEMA.exists():
        pytest.fail(
            f"{COMPOSE_SCHEMA} is missing: run `make test` (its install step puts it there)"
        )
    return dict(json.loads(COMPOSE_SCHEMA.read_text()))


def extract_compose_schema(wheel: Path, dest: Path = COMPOSE_SCHEMA) -> None:
    """Copy the schema out of the docker-compose wheel (used by the Makefile)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        dest.write_bytes(zf.read(COMPOSE_WHEEL_MEMBER))


@dataclass
class ImageStage:
    """The last stage of a Dockerfile: what a container of the image runs."""

    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    user: str = "root"
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    healthcheck: list[str] = field(default_factory=list)
    copies: list[tuple[str, str]] = field(default_factory=list)  # (source, destination)
    exposed: list[str] = field(default_factory=list)


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return lines


def _exec_form(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("["):
        return [str(v) for v in json.loads(value)]
    return ["/bin/sh", "-c", value]


def read_runtime_stage(path: Path = DOCKERFILE) -> ImageStage:
    stage = ImageStage()
    for line in _logical_lines(path.read_text()):
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage = ImageStage()
        elif word == "ENTRYPOINT":
            stage.entrypoint = _exec_form(rest)
        elif word == "CMD":
            stage.cmd = _exec_form(rest)
        elif word == "USER":
            stage.user = rest.strip()
        elif word == "WORKDIR":
            stage.workdir = rest.strip()
        elif word == "EXPOSE":
            stage.exposed += rest.split()
        elif word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                stage.env[key] = value
        elif word == "HEALTHCHECK":
            _, _, command = rest.partition("CMD ")
            stage.healthcheck = _exec_form(command)
        elif word == "COPY" and "--from" not in rest:
            *sources, dest = rest.split()
            stage.copies += [(src, dest) for src in sources]
    return stage
